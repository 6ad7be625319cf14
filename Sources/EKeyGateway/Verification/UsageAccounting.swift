public import EKeyProtocol
public import EKeyStore
public import EKeyServer
public import Logging
import Prometheus

/// Step 5: one atomic store call refuses a replayed proof `jti`, creates the trace's
/// counter on first use, refuses at the limit, and counts the use. A store failure
/// refuses the request (503): nothing is forwarded on doubt. A use the upstream never saw
/// is given back (``refund(_:logger:)``).
public struct UsageAccounting: Sendable {
    let store: any UsageStore
    let proofWindow: Duration
    let clockSkew: Duration
    /// `ekey_store_seconds`, made once.
    let storeSeconds: DurationHistogram

    /// Creates the step; `proofWindow` is how long a proof's `jti` is remembered, and
    /// `clockSkew` how long after `exp` a token is still accepted (its counter outlives that).
    public init(store: any UsageStore, proofWindow: Duration, clockSkew: Duration, metrics: MetricsRegistry) {
        self.store = store
        self.proofWindow = proofWindow
        self.clockSkew = clockSkew
        storeSeconds = metrics.latency("ekey_store_seconds")
    }

    /// Counts one use; returns `(used, limit)`.
    public func consume(_ token: VerifiedEKey, jti: String?, scheme: AuthorizationScheme) async throws(Rejection) -> (used: Int, limit: Int) {
        let claims = token.claims
        let request = ConsumeRequest(
            trace: claims.trace, jti: jti, limit: claims.capability.limit, subject: claims.subject,
            counterExpiresAtMilliseconds: ConsumeRequest.counterExpiry(expiresAt: claims.expiresAt, clockSkew: clockSkew),
            proofWindow: proofWindow, expiresAt: claims.expiresAt)
        let started = ContinuousClock.now
        let outcome: ConsumeOutcome
        do {
            outcome = try await store.consume(request)
        } catch {
            storeSeconds.record(ContinuousClock.now - started)
            throw Rejection(
                EKeyError(.temporarilyUnavailable, "the usage store is unreachable, so the use cannot be counted; retry shortly"),
                scheme: scheme, outcome: .storeUnavailable, token: claims)
        }
        storeSeconds.record(ContinuousClock.now - started)
        switch outcome {
        case .allowed(let used, let limit):
            return (used, limit)
        case .replayedProof:
            throw Rejection(
                EKeyError(.replayDetected, "this DPoP proof was already used; make a fresh proof for each request"),
                scheme: scheme, outcome: .replayBlocked, token: claims)
        case .limitReached(let limit):
            throw Rejection(
                EKeyError(.replayDetected, limit == 1 ? "this token's only use is spent; request a new token" : "this token's \(limit) uses are spent; request a new token"),
                scheme: scheme, outcome: .replayBlocked, token: claims)
        }
    }

    /// Gives back the use counted for `token` when the upstream never saw the request
    /// (docs/spec/gateway.md). A store failure here is logged and the use stays counted:
    /// the safe direction.
    public func refund(_ token: VerifiedEKey, logger: Logger) async {
        let trace = token.claims.trace
        do {
            _ = try await store.refund(trace: trace)
        } catch {
            logger.warning("could not give a use back after an unreachable upstream", metadata: ["trace": .string(trace), "error": "\(error)"])
        }
    }
}
