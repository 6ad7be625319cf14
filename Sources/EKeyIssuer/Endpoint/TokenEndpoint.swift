import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
import NIOCore
import Prometheus

/// `POST /token` (docs/spec/issuer.md): parse, authenticate, bind, apply the policy, count the
/// rate limit, sign. Every request ends in one audit event and the issuance metrics.
public struct TokenEndpoint: Sendable {
    /// Largest accepted body.
    public static let maximumBodySize = 64 * 1024

    let issuerURL: String
    let authenticator: ClientAuthenticator
    let policy: IssuancePolicy
    let keys: SigningKeyManager
    let store: any UsageStore
    let metrics: MetricsRegistry
    let audit: AuditLog
    let logger: Logger
    let now: @Sendable () -> Int64
    /// `ekey_issue_latency_seconds`, made once.
    let issueLatency: DurationHistogram
    /// `ekey_issue_count_total` of each template, made once (each exports 0 from the start);
    /// every allowance names one of the policy's templates.
    let issuedByTemplate: [String: Counter]

    /// Creates the endpoint.
    public init(
        issuerURL: String, authenticator: ClientAuthenticator, policy: IssuancePolicy, keys: SigningKeyManager, store: any UsageStore,
        metrics: MetricsRegistry, audit: AuditLog = AuditLog(), logger: Logger,
        now: @escaping @Sendable () -> Int64 = WallClock.epochSeconds
    ) {
        self.issuerURL = issuerURL
        self.authenticator = authenticator
        self.policy = policy
        self.keys = keys
        self.store = store
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        self.now = now
        issueLatency = metrics.latency("ekey_issue_latency_seconds")
        issuedByTemplate = Dictionary(
            policy.templates.map { ($0.name, metrics.counter("ekey_issue_count_total", [("template", $0.name)])) }, uniquingKeysWith: { first, _ in first })
    }

    /// A refusal on the way: the wire error and the reason label.
    struct Refusal: Error {
        let error: EKeyError
        let reason: DenialReason?
        var retryAfter: Int?
        /// No key could sign (``sign(_:confirmation:allowance:time:event:)``): the key
        /// manager names why.
        var keyUnavailable = false
    }

    /// Handles one request.
    public func handle(_ request: Request, context: EKeyRequestContext) async -> Response {
        let start = ContinuousClock.now
        var event = Self.event(clientAddress: context.clientAddress)
        let outcome: Result<(HTTPResponse, ByteBuffer), Refusal>
        do {
            outcome = .success(try await issue(request, context: context, event: &event))
        } catch {
            outcome = .failure(error)
        }
        return Response(finish(outcome, event: &event, started: start))
    }

    /// Answers on the event loop when nothing needs waiting for: an mTLS caller without a
    /// DPoP proof or subject token, asking under a template without `rate_per_minute`,
    /// the body already arrived. `nil` sends the request to ``handle(_:context:)`` in a
    /// task, which gives the same answer; nothing is counted or audited before that.
    public func answerAtOnce(body: ByteBuffer, peer: PeerIdentity, proofs: [String], clientAddress: String?) -> (HTTPResponse, ByteBuffer)? {
        let start = ContinuousClock.now
        var event = Self.event(clientAddress: clientAddress)
        let outcome: Result<(HTTPResponse, ByteBuffer), Refusal>
        do throws(Refusal) {
            let tokenRequest = try Self.parse(body)
            event.capabilityAction = tokenRequest.capability.action.description
            let time = now()
            let client: AuthenticatedClient
            do {
                guard case .authenticated(let authenticated) = try authenticator.begin(
                    peer: peer, proofs: proofs, subjectToken: tokenRequest.subjectToken, now: time)
                else { return nil }
                client = authenticated
            } catch {
                throw Self.refusal(error)
            }
            event.subject = client.identity
            let (confirmation, allowance) = try decide(tokenRequest, client: client, event: &event)
            guard allowance.template.ratePerMinute == nil else { return nil }
            outcome = .success(try sign(tokenRequest, confirmation: confirmation, allowance: allowance, time: time, event: &event))
        } catch where error.keyUnavailable {
            return nil
        } catch {
            outcome = .failure(error)
        }
        return finish(outcome, event: &event, started: start)
    }

    private static func event(clientAddress: String?) -> AuditEvent {
        var event = AuditEvent(event: "issue", outcome: "denied")
        event.method = "POST"
        event.path = "/token"
        event.client = clientAddress
        return event
    }

    /// The response of an issuance or a refusal, counted in the metrics and audited.
    private func finish(_ outcome: Result<(HTTPResponse, ByteBuffer), Refusal>, event: inout AuditEvent, started: ContinuousClock.Instant)
        -> (HTTPResponse, ByteBuffer)
    {
        let response: (HTTPResponse, ByteBuffer)
        switch outcome {
        case .success(let issued):
            event.outcome = "issued"
            response = issued
        case .failure(let error):
            switch error.error.status {
            case 429: event.outcome = "rate_limited"
            case 500...: event.outcome = "error"
            default: event.outcome = "denied"
            }
            event.reason = error.reason?.name ?? error.error.code.wireName
            if let reason = error.reason {
                metrics.increment("ekey_issue_denied_total", [("reason", reason.name)])
            }
            var refusal = HTTPResponse.error(error.error)
            if let retryAfter = error.retryAfter {
                refusal.0.headerFields[.retryAfter] = String(retryAfter)
            }
            response = refusal
        }
        let elapsed = ContinuousClock.now - started
        issueLatency.record(elapsed)
        event.latencyMilliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        audit.record(event)
        return response
    }

    private func issue(_ request: Request, context: EKeyRequestContext, event: inout AuditEvent) async throws(Refusal) -> (HTTPResponse, ByteBuffer) {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maximumBodySize)
        } catch {
            throw Refusal(error: EKeyError(.invalidRequest, "the body could not be read (at most \(Self.maximumBodySize) bytes)"), reason: .invalidRequest)
        }
        let tokenRequest = try Self.parse(body)
        event.capabilityAction = tokenRequest.capability.action.description
        let time = now()
        let client: AuthenticatedClient
        do {
            client = try await ServiceTracing.span("issuer.authentication") { () async throws(EKeyError) in
                try await authenticator.authenticate(
                    peer: await context.peerIdentity(), proofs: request.headers[values: .dpop], subjectToken: tokenRequest.subjectToken, now: time)
            }
        } catch {
            throw Self.refusal(error)
        }
        event.subject = client.identity
        let (confirmation, allowance) = try await ServiceTracing.span("issuer.policy") { () throws(Refusal) in
            try decide(tokenRequest, client: client, event: &event)
        }
        if let rate = allowance.template.ratePerMinute {
            try await takeRateLimitToken(rate: rate, allowance: allowance, client: client)
        }
        do {
            return try await ServiceTracing.span("issuer.signing") { () throws(Refusal) in
                try sign(tokenRequest, confirmation: confirmation, allowance: allowance, time: time, event: &event)
            }
        } catch where error.keyUnavailable {
            throw await unavailability()
        }
    }

    private static func parse(_ body: ByteBuffer) throws(Refusal) -> TokenRequest {
        do {
            return try TokenRequest(body: Array(body.readableBytesView))
        } catch {
            throw Refusal(error: error, reason: .invalidRequest)
        }
    }

    /// What the token is bound to, and the template that allows it.
    private func decide(_ tokenRequest: TokenRequest, client: AuthenticatedClient, event: inout AuditEvent) throws(Refusal)
        -> (Confirmation, IssuancePolicy.Allowance)
    {
        let confirmation: Confirmation
        do {
            confirmation = try Self.confirmation(for: tokenRequest, client: client)
        } catch {
            throw Refusal(error: error, reason: .invalidRequest)
        }
        switch policy.decide(identity: client.identity, request: tokenRequest) {
        case .allowed(let allowance):
            event.extra["template"] = allowance.template.name
            return (confirmation, allowance)
        case .denied(let reason, let description):
            throw Refusal(error: EKeyError(.accessDenied, description), reason: reason)
        }
    }

    private func takeRateLimitToken(rate: Int, allowance: IssuancePolicy.Allowance, client: AuthenticatedClient) async throws(Refusal) {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: RateLimitOutcome
        do {
            outcome = try await ServiceTracing.span("issuer.store") {
                try await store.takeRateLimitToken(identity: allowance.template.name + "|" + client.identity, ratePerMinute: rate)
            }
        } catch {
            metrics.record("ekey_store_seconds", clock.now - start)
            logger.error("the store could not count the issuance rate", metadata: ["error": "\(error)"])
            throw Refusal(error: EKeyError(.temporarilyUnavailable, "the rate-limit store is unreachable; retry shortly"), reason: nil)
        }
        metrics.record("ekey_store_seconds", clock.now - start)
        if let seconds = outcome.retryAfterSeconds {
            throw Refusal(
                error: EKeyError(.rateLimited, "\(client.identity) asked for more than \(rate) tokens a minute from template \(allowance.template.name); retry after \(seconds) s"),
                reason: .rateLimited, retryAfter: seconds)
        }
    }

    private static let keyUnavailable = Refusal(
        error: EKeyError(.temporarilyUnavailable, SigningKeyManager.Unavailability.notRegistered.tokenErrorDescription), reason: nil,
        keyUnavailable: true)

    /// Why no key signs, from the key manager, as the refusal.
    private func unavailability() async -> Refusal {
        let unavailability = await keys.unavailability ?? .notRegistered
        return Refusal(error: EKeyError(.temporarilyUnavailable, unavailability.tokenErrorDescription), reason: nil)
    }

    /// Signs the token with the active key and builds the 201 response.
    private func sign(
        _ tokenRequest: TokenRequest, confirmation: Confirmation, allowance: IssuancePolicy.Allowance, time: Int64, event: inout AuditEvent
    ) throws(Refusal) -> (HTTPResponse, ByteBuffer) {
        // Without a key (none registered yet, or the publisher revoked it) nothing is signed.
        guard let signing = keys.activeKey() else { throw Self.keyUnavailable }
        let claims = EKeyClaims(
            issuer: issuerURL, subject: allowance.subject, audience: tokenRequest.audience, issuedAt: time, expiresAt: time + allowance.ttl,
            capability: tokenRequest.capability, confirmation: confirmation, trace: EKeyClaims.randomTrace())
        let token: String
        do {
            token = try EKeyToken.sign(claims, keyID: signing.keyID, bind: tokenRequest.bind, using: signing.key)
        } catch {
            logger.error("signing failed", metadata: ["kid": .string(signing.keyID), "error": "\(error)"])
            throw Refusal(error: EKeyError(.temporarilyUnavailable, "the token could not be signed; retry shortly"), reason: nil)
        }
        // The publisher may have revoked the key while this token was signed: never hand it out.
        guard !signing.isRevoked else { throw Self.keyUnavailable }
        event.trace = claims.trace
        event.extra["kid"] = signing.keyID
        issuedByTemplate[allowance.template.name]?.increment()
        let response = TokenResponse(
            token: token, tokenType: TokenResponse.tokenType(for: tokenRequest.bind), expiresIn: allowance.ttl, expiresAt: claims.expiresAt,
            trace: claims.trace, confirmation: confirmation, keyID: signing.keyID)
        return HTTPResponse.json(serialized: response.serializedBytes(), status: .created)
    }

    /// What the token is bound to (docs/spec/issuer.md): mTLS → the caller's certificate; DPoP →
    /// the request's proof key, or `jwk` for mTLS callers without a proof; `jwk` and the
    /// proof key must agree.
    static func confirmation(for request: TokenRequest, client: AuthenticatedClient) throws(EKeyError) -> Confirmation {
        switch request.bind {
        case .mtls:
            guard let certificate = client.certificateSHA256 else {
                throw EKeyError(.invalidRequest, "bind mTLS needs a TLS client certificate on this connection; use bind DPoP")
            }
            guard request.jwk == nil else {
                throw EKeyError(.invalidRequest, "jwk is only used with bind DPoP; remove it")
            }
            return .certificateThumbprint(Base64URL.encode(certificate))
        case .dpop:
            switch (client.proofKey, request.jwk) {
            case (let proofKey?, let jwk?):
                guard proofKey.thumbprint == jwk.thumbprint else {
                    throw EKeyError(.invalidRequest, "jwk differs from the DPoP proof key; send the proof key or leave jwk out")
                }
                return .jwkThumbprint(proofKey.thumbprint)
            case (let proofKey?, nil):
                return .jwkThumbprint(proofKey.thumbprint)
            case (nil, let jwk?):
                guard client.method == .mtls else {
                    throw EKeyError(.invalidRequest, "jwk without a DPoP proof is only accepted from mTLS-authenticated callers")
                }
                return .jwkThumbprint(jwk.thumbprint)
            case (nil, nil):
                throw EKeyError(.invalidRequest, "bind DPoP needs a DPoP proof header (or, over mTLS, a jwk) naming the key to bind to")
            }
        }
    }

    static func refusal(_ error: EKeyError) -> Refusal {
        switch error.code {
        case .invalidClient: Refusal(error: error, reason: .invalidClient)
        case .invalidRequest: Refusal(error: error, reason: .invalidRequest)
        default: Refusal(error: error, reason: nil)
        }
    }
}

extension HTTPField.Name {
    /// The `DPoP` request header (RFC 9449).
    static let dpop = HTTPField.Name("DPoP")!
}
