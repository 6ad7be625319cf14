public import EKeyProtocol
public import EKeyStore
public import EKeyServer

/// Remembers the `jti` of every DPoP proof sent to `POST /token` for the proof window, per
/// proof key, in the shared store, so a proof replayed to any issuer replica is refused
/// (docs/spec/issuer.md: "`jti` never seen before for that key within the window").
///
/// Uses the store's atomic consume: the counter `issuer-dpop-<jkt>` with an unreachable
/// limit, the `jti` as the proof to check.
public struct ProofReplayGuard: Sendable {
    private let store: any UsageStore
    private let window: Duration
    private let metrics: MetricsRegistry

    /// Creates a guard remembering `jti`s for `window` (at least twice the accepted `iat` skew).
    public init(store: any UsageStore, window: Duration, metrics: MetricsRegistry) {
        self.store = store
        self.window = window
        self.metrics = metrics
    }

    /// Records the proof's `jti`; throws 401 `invalid_client` when it was seen before and
    /// 503 `temporarily_unavailable` when the store cannot answer (fail closed).
    public func checkFirstUse(of proof: DPoPProofVerifier.VerifiedProof) async throws(EKeyError) {
        let request = ConsumeRequest(
            trace: "issuer-dpop-" + proof.thumbprint, jti: proof.jti, limit: Capability.maximumLimit,
            subject: "issuer-dpop",
            counterExpiresAtMilliseconds: WallClock.epochMilliseconds() + 2 * window.components.seconds * 1000 + 1000,
            proofWindow: window)
        let outcome: ConsumeOutcome
        let clock = ContinuousClock()
        let start = clock.now
        do {
            outcome = try await store.consume(request)
        } catch {
            metrics.record("ekey_store_seconds", clock.now - start)
            throw EKeyError(.temporarilyUnavailable, "the replay store is unreachable; retry shortly")
        }
        metrics.record("ekey_store_seconds", clock.now - start)
        switch outcome {
        case .allowed:
            return
        case .replayedProof, .limitReached:
            throw EKeyError(.invalidClient, "the DPoP proof was already used (jti seen before); make a fresh proof for each request")
        }
    }
}
