internal import Synchronization

/// The embedded store (`memory://`): the Redis store's semantics inside one process.
///
/// Atomic (one lock around each operation), expiring (counters at their absolute expiry,
/// the token's `exp` + clock skew + margin; proofs after the proof window; rate buckets
/// when full again) and bounded: at most
/// `maxEntries` counters, proofs and rate buckets. When full it first drops expired
/// entries; if still full it refuses new ones with `StoreError.capacityExceeded` (fail
/// closed) rather than forgetting a live `jti` or counter. Registered keys and tombstones
/// are few and not counted against the bound.
public final class MemoryStore: UsageStore, KeyRegistryStore {
    public typealias Instant = ContinuousClock.Instant

    private struct Counter {
        var limit: Int
        var used: Int
        var subject: String
        var expiresAtEpoch: Int64
        var expiry: Instant
    }

    private struct State {
        var counters: [String: Counter] = [:]
        var proofs: [String: Instant] = [:]
        var rateBuckets: [String: Instant] = [:]
        var keys: [String: RegisteredKey] = [:]
        /// Tombstones of revoked kids; a kid is never in both `keys` and `revoked`.
        var revoked: [String: RevokedKey] = [:]
        var operationsSinceSweep = 0

        var entryCount: Int { self.counters.count + self.proofs.count + self.rateBuckets.count }

        mutating func sweep(now: Instant) {
            self.counters = self.counters.filter { $0.value.expiry > now }
            self.proofs = self.proofs.filter { $0.value > now }
            self.rateBuckets = self.rateBuckets.filter { $0.value > now }
            self.operationsSinceSweep = 0
        }
    }

    /// Entries (counters, proofs, rate buckets) the store holds at most.
    public let maxEntries: Int
    private let state = Mutex(State())
    private let now: @Sendable () -> Instant
    /// The wall-clock time (epoch milliseconds) at `startInstant`: absolute expiries are
    /// turned into instants of `now`'s clock from it, so one injected clock drives both.
    private let startEpochMilliseconds: Int64
    private let startInstant: Instant
    private static let sweepEvery = 10_000

    /// - Parameters:
    ///   - now: the clock; tests may pass their own.
    ///   - epochMilliseconds: the wall clock at creation, in epoch milliseconds; later wall
    ///     times are derived from `now`.
    public init(
        maxEntries: Int = 1_000_000, now: @escaping @Sendable () -> Instant = { ContinuousClock.now },
        epochMilliseconds: Int64 = WallClock.epochMilliseconds()
    ) {
        self.maxEntries = max(1, maxEntries)
        self.now = now
        self.startInstant = now()
        self.startEpochMilliseconds = epochMilliseconds
    }

    /// The instant of `now`'s clock at which the wall clock reads `epochMilliseconds`.
    private func instant(atEpochMilliseconds epochMilliseconds: Int64) -> Instant {
        startInstant + .milliseconds(epochMilliseconds - startEpochMilliseconds)
    }

    /// Live and expired-but-not-yet-reclaimed entries (for tests and metrics).
    public var entryCount: Int { self.state.withLock { $0.entryCount } }

    private func makeRoom(_ needed: Int, in state: inout State, now: Instant) throws(StoreError) {
        state.operationsSinceSweep += 1
        if state.operationsSinceSweep >= Self.sweepEvery { state.sweep(now: now) }
        guard needed > 0, state.entryCount + needed > self.maxEntries else { return }
        state.sweep(now: now)
        guard state.entryCount + needed <= self.maxEntries else {
            throw StoreError(
                .capacityExceeded,
                "store memory:// is full (\(self.maxEntries) live entries); raise max_entries in store.url (memory://?max_entries=N) or use Redis"
            )
        }
    }

    // MARK: UsageStore

    public func consume(_ request: ConsumeRequest) async throws -> ConsumeOutcome {
        try request.validate()
        let now = self.now()
        return try self.state.withLock { state throws(StoreError) -> ConsumeOutcome in
            let counter = state.counters[request.trace].flatMap { $0.expiry > now ? $0 : nil }
            let proofKey = request.jti.map { "\(request.trace)\u{0}\($0)" }
            if let proofKey, let seen = state.proofs[proofKey], seen > now {
                return .replayedProof
            }
            if let counter, counter.used >= counter.limit {
                return .limitReached(limit: counter.limit)
            }
            let needed = (state.counters[request.trace] == nil ? 1 : 0) + (proofKey.map { state.proofs[$0] == nil ? 1 : 0 } ?? 0)
            let expiry = counter?.expiry ?? self.instant(atEpochMilliseconds: request.counterExpiresAtMilliseconds)
            guard expiry > now else { throw StoreError.counterExpiryPassed("memory://") }
            try self.makeRoom(needed, in: &state, now: now)
            var updated =
                counter
                ?? Counter(
                    limit: request.limit, used: 0, subject: request.subject, expiresAtEpoch: request.expiresAt, expiry: expiry)
            updated.used += 1
            state.counters[request.trace] = updated
            if let proofKey {
                state.proofs[proofKey] = now + request.proofWindow
            }
            return .allowed(used: updated.used, limit: updated.limit)
        }
    }

    public func refund(trace: String) async throws -> RefundOutcome {
        let now = self.now()
        return self.state.withLock { state in
            guard var counter = state.counters[trace], counter.expiry > now else { return .unknownTrace }
            guard counter.used > 0 else { return .nothingUsed }
            counter.used -= 1
            state.counters[trace] = counter
            return .refunded
        }
    }

    public func takeRateLimitToken(identity: String, ratePerMinute: Int) async throws -> RateLimitOutcome {
        try validateRate(identity: identity, ratePerMinute: ratePerMinute)
        let now = self.now()
        let period = Duration.seconds(60)
        let interval = period / ratePerMinute
        return try self.state.withLock { state throws(StoreError) -> RateLimitOutcome in
            let stored = state.rateBuckets[identity]
            let theoreticalArrival = max(stored ?? now, now)
            let next = theoreticalArrival + interval
            let allowedAt = next - period
            if allowedAt > now {
                return .limited(retryAfter: allowedAt - now)
            }
            try self.makeRoom(stored == nil ? 1 : 0, in: &state, now: now)
            state.rateBuckets[identity] = next
            return .allowed
        }
    }

    public func ping() async throws {}

    // MARK: KeyRegistryStore

    public func put(_ key: RegisteredKey) async throws -> KeyRegistrationOutcome {
        self.state.withLock { state in
            if let tombstone = state.revoked[key.kid] { return .revoked(tombstone) }
            guard var existing = state.keys[key.kid] else {
                state.keys[key.kid] = key
                return .created(key)
            }
            guard existing.jwk == key.jwk else { return .conflict(existing: existing) }
            if let notAfter = key.notAfter {
                existing.notAfter = notAfter
                state.keys[key.kid] = existing
            }
            return .unchanged(existing)
        }
    }

    public func revoke(kid: String, at revokedAt: Int64, forgetAfter: Int64) async throws -> KeyRevocationOutcome {
        self.state.withLock { state in
            if let tombstone = state.revoked[kid] { return .alreadyRevoked(tombstone) }
            guard state.keys.removeValue(forKey: kid) != nil else { return .unknown }
            let tombstone = RevokedKey(kid: kid, revokedAt: revokedAt, forgetAfter: forgetAfter)
            state.revoked[kid] = tombstone
            return .revoked(tombstone)
        }
    }

    public func list() async throws -> [RegisteredKey] {
        self.state.withLock { state in state.keys.values.sorted { $0.kid < $1.kid } }
    }

    public func revokedKeys() async throws -> [RevokedKey] {
        self.state.withLock { state in state.revoked.values.sorted { $0.kid < $1.kid } }
    }

    public func importAll(_ keys: [RegisteredKey], revoked: [RevokedKey]) async throws -> KeyImportOutcome {
        self.state.withLock { state in
            var tombstones = state.revoked
            for tombstone in revoked where tombstone.forgetAfter > tombstones[tombstone.kid]?.forgetAfter ?? .min {
                tombstones[tombstone.kid] = tombstone
            }
            if let refused = keys.lazy.compactMap({ tombstones[$0.kid] }).first {
                return .revokedKey(refused)
            }
            state.keys = Dictionary(keys.map { ($0.kid, $0) }, uniquingKeysWith: { _, last in last })
            state.revoked = tombstones
            return .imported(state.keys.count)
        }
    }

    public func purge(keysNotAfterUpTo keyCutoff: Int64, tombstonesForgetAfterBefore tombstoneCutoff: Int64) async throws -> Int {
        self.state.withLock { state in
            let before = state.keys.count + state.revoked.count
            state.keys = state.keys.filter { $0.value.notAfter.map { $0 > keyCutoff } ?? true }
            state.revoked = state.revoked.filter { $0.value.forgetAfter >= tombstoneCutoff }
            return before - state.keys.count - state.revoked.count
        }
    }
}
