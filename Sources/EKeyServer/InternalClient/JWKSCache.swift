public import AsyncHTTPClient
public import EKeyProtocol
public import Logging
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
public import ServiceLifecycle

/// The gateway's copy of the publisher's key set (docs/spec/publisher.md, docs/spec/gateway.md step 2).
///
/// - Fetched over internal HTTP/2 mTLS with `If-None-Match`; kept for the `max-age` the
///   publisher sends (bounded by ``Policy/minimumMaxAge`` and ``Policy/maximumMaxAge``).
/// - A token signed with an unknown `kid` triggers one refresh, at most once per
///   ``Policy/unknownKeyRefreshInterval``, so a flood of forged kids cannot hammer the
///   publisher.
/// - When the publisher cannot be reached, or sends an empty or unparsable set, the last
///   good set keeps being served and the failure is logged and counted; a key the publisher no longer lists (revoked) is dropped
///   at the next successful refresh.
///
/// Run it as a `Service` so the set is refreshed in the background before it goes stale.
///
/// Freshness, the unknown-kid interval and the background pauses are timed by the clock
/// given at creation (`ContinuousClock` unless a test passes its own).
public actor JWKSCache: Service {
    /// Timing rules of the cache.
    public struct Policy: Sendable {
        /// Used when the publisher sends no usable `max-age`.
        public var defaultMaxAge: Duration = .seconds(30)
        /// Smallest honoured `max-age`, so a publisher cannot make the gateway poll it constantly.
        public var minimumMaxAge: Duration = .seconds(1)
        /// Largest honoured `max-age`, so revocations reach the gateway in bounded time.
        public var maximumMaxAge: Duration = .seconds(300)
        /// At most one refresh for unknown kids per interval (docs/spec/gateway.md step 2: one per second).
        public var unknownKeyRefreshInterval: Duration = .seconds(1)
        /// Pause before retrying after a failed background refresh.
        public var retryAfterFailure: Duration = .seconds(2)
        /// Time allowed for one fetch.
        public var fetchTimeout: Duration = .seconds(5)
        /// Keep RSA keys (external IdPs); E-Key's own publisher never serves them.
        public var acceptRSAKeys = false

        /// The defaults above.
        public init() {}
    }

    /// What one refresh did (the `outcome` label of `ekey_jwks_refresh_total`).
    public enum RefreshOutcome: String, Sendable {
        case updated, unchanged, error
    }

    private let url: String
    private let client: HTTPClient
    private let tls: ClientTLS?
    private let policy: Policy
    private let logger: Logger
    private let metrics: MetricsRegistry?
    /// The clock, as instants since the cache was created (``Instant``).
    private let clock: ElapsedClock

    private var keys = JWKSet(keys: [])
    private var entityTag: String?
    private var freshUntil: Instant?
    private var lastSuccess: Instant?
    private var lastUnknownKeyRefresh: Instant?
    private var lastError: String?
    private var inFlight: Task<RefreshOutcome, Never>?
    /// The set and its freshness as last stored, readable without entering the actor.
    private nonisolated let published = NIOLockedValueBox<(keys: JWKSet, freshUntil: Instant?)>(
        (JWKSet(keys: []), nil))

    /// Creates a cache for the JWKS at `url`, fetched with `client` (configured for mTLS);
    /// with `tls`, each fetch uses `tls`'s current configuration, so a reloaded one takes effect.
    /// `clock` times freshness and the pauses of ``run()``.
    public init(
        url: String, client: HTTPClient, tls: ClientTLS? = nil, policy: Policy = .init(), metrics: MetricsRegistry? = nil, logger: Logger,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.url = url
        self.client = client
        self.tls = tls
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
        self.clock = ElapsedClock(clock)
    }

    /// A point in time of the cache's clock: the time elapsed since the cache was created.
    typealias Instant = Duration

    /// The injected clock with its instant type erased: `now` reads it as the time since
    /// creation, `sleep` sleeps on it.
    struct ElapsedClock: Sendable {
        let now: @Sendable () -> Instant
        let sleep: @Sendable (Duration) async throws -> Void

        init(_ clock: some Clock<Duration>) {
            if clock is ContinuousClock {
                // The default reads ContinuousClock directly, with no generic calls on the
                // request path (``freshKey(forKeyID:)``), and sleeps as `Task.sleep` does.
                let origin = ContinuousClock.now
                now = { ContinuousClock.now - origin }
                sleep = { try await Task.sleep(for: $0) }
            } else {
                let origin = clock.now
                now = { origin.duration(to: clock.now) }
                sleep = { try await clock.sleep(for: $0) }
            }
        }
    }

    /// The verification key for `kid`: from the cached set, after one refresh when the set
    /// is stale or (rate-limited) when the kid is unknown. `nil` when no such key is known.
    public func key(forKeyID keyID: String) async -> JWK? {
        if isStale {
            _ = await refresh()
        }
        if let key = keys[keyID: keyID] {
            return key
        }
        let now = clock.now()
        if let last = lastUnknownKeyRefresh, now - last < policy.unknownKeyRefreshInterval {
            return nil
        }
        lastUnknownKeyRefresh = now
        _ = await refresh()
        return keys[keyID: keyID]
    }

    /// The key for `kid` when the set is fresh and holds it (the common case), read without
    /// entering the actor; `nil` otherwise, and then ``key(forKeyID:)`` decides.
    public nonisolated func freshKey(forKeyID keyID: String) -> JWK? {
        let (keys, freshUntil) = published.withLockedValue { $0 }
        guard let freshUntil, clock.now() < freshUntil else { return nil }
        return keys[keyID: keyID]
    }

    /// The keys currently served.
    public var currentKeys: JWKSet { keys }

    /// Whether at least one key is held (part of the gateway's `/readyz`).
    public var hasKeys: Bool { !keys.keys.isEmpty }

    /// The reason of the last failed refresh, `nil` after a success.
    public var lastRefreshError: String? { lastError }

    private var isStale: Bool {
        guard let freshUntil else { return true }
        return clock.now() >= freshUntil
    }

    /// Fetches the set now (joining a fetch already under way).
    @discardableResult
    public func refresh() async -> RefreshOutcome {
        if let inFlight {
            return await inFlight.value
        }
        let task = Task { await self.fetch() }
        inFlight = task
        let outcome = await task.value
        inFlight = nil
        return outcome
    }

    /// Keeps the set fresh until the service group shuts down.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let outcome = await refresh()
            let pause: Duration
            if outcome == .error {
                pause = policy.retryAfterFailure
            } else if let freshUntil {
                pause = max(.milliseconds(100), freshUntil - clock.now())
            } else {
                pause = policy.defaultMaxAge
            }
            let sleep = clock.sleep
            try? await cancelWhenGracefulShutdown {
                try await sleep(pause)
            }
        }
    }

    private func fetch() async -> RefreshOutcome {
        var request = HTTPClientRequest(url: url)
        request.tlsConfiguration = tls?.configuration
        request.headers.add(name: "accept", value: "application/jwk-set+json, application/json")
        if let entityTag {
            request.headers.add(name: "if-none-match", value: entityTag)
        }
        let outcome: RefreshOutcome
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(Int64(policy.fetchTimeout.nanoseconds)))
            let maxAge = Self.maxAge(from: response.headers.first(name: "cache-control"))
            switch response.status.code {
            case 304:
                outcome = .unchanged
            case 200:
                let body = try await response.body.collect(upTo: 1 << 20)
                let set = try JWKSet(parsing: Array(body.readableBytesView), acceptingRSA: policy.acceptRSAKeys)
                guard !set.keys.isEmpty else {
                    throw FetchFailure(description: "the publisher sent an empty key set")
                }
                keys = set
                entityTag = response.headers.first(name: "etag")
                outcome = .updated
            default:
                throw FetchFailure(description: "the publisher answered HTTP \(response.status.code)")
            }
            let age = clamp(maxAge ?? policy.defaultMaxAge)
            freshUntil = clock.now() + age
            published.withLockedValue { $0 = (keys, freshUntil) }
            lastSuccess = clock.now()
            if lastError != nil {
                logger.info("JWKS refresh succeeded again", metadata: ["url": .string(url), "keys": .stringConvertible(keys.keys.count)])
            }
            lastError = nil
        } catch {
            let reason = "\(error)"
            lastError = reason
            outcome = .error
            logger.warning(
                "JWKS refresh failed; serving the last good key set",
                metadata: [
                    "url": .string(url), "error": .string(reason), "keys": .stringConvertible(keys.keys.count),
                    "fix": "check that the publisher is up and that jwks.ca/cert/key are right",
                ])
        }
        metrics?.increment("ekey_jwks_refresh_total", [("outcome", outcome.rawValue)])
        return outcome
    }

    private func clamp(_ age: Duration) -> Duration {
        min(max(age, policy.minimumMaxAge), policy.maximumMaxAge)
    }

    /// The `max-age` directive of a `Cache-Control` header.
    static func maxAge(from header: String?) -> Duration? {
        guard let header else { return nil }
        for directive in header.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0].lowercased() == "max-age", let seconds = Int(parts[1]), seconds >= 0 {
                return .seconds(seconds)
            }
        }
        return nil
    }

    struct FetchFailure: Error, CustomStringConvertible {
        let description: String
    }
}

extension Duration {
    /// The whole duration in nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
