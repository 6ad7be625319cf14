public import EKeyProtocol

/// How the gateway decided a request: the `outcome` of its `verify` audit event and, for
/// every outcome but ``allowed``, the `reason` label of `ekey_verify_failure_total`
/// (docs/spec/observability.md §12.2). The raw value is that wire name.
///
/// Each verification step names the outcome of the ``Rejection`` it throws; the upstream
/// step's failures are all ``upstreamError``.
public enum VerificationOutcome: String, Sendable, CaseIterable {
    /// Verified and answered by the upstream.
    case allowed
    /// Malformed request: framing, path, no route, no token or a duplicated header.
    case invalidRequest = "invalid_request"
    /// The token is malformed, unsigned by a current key, or its claims do not hold.
    case invalidToken = "invalid_token"
    /// The token is past `exp` plus the clock skew.
    case expired
    /// The DPoP proof or the TLS client certificate does not bind the token.
    case invalidProof = "invalid_proof"
    /// The proof lacks the current server nonce (`use_dpop_nonce`).
    case nonceRequired = "nonce_required"
    /// The proof's `jti` was seen before, or the token's uses are spent.
    case replayBlocked = "replay_blocked"
    /// The request is outside the token's capability.
    case capabilityMismatch = "capability_mismatch"
    /// The usage store could not count the use.
    case storeUnavailable = "store_unavailable"
    /// The upstream could not be reached, failed, or broke its response.
    case upstreamError = "upstream_error"

    /// The outcome of a refusal with a protocol error raised below the steps (token
    /// parsing and claims, DPoP proofs), by the error's wire code.
    public init(refusing error: EKeyError) {
        switch error.code {
        case .expiredToken: self = .expired
        case .invalidProof: self = .invalidProof
        case .useDPoPNonce: self = .nonceRequired
        case .replayDetected: self = .replayBlocked
        case .capabilityMismatch: self = .capabilityMismatch
        case .temporarilyUnavailable: self = .storeUnavailable
        case .invalidRequest: self = .invalidRequest
        default: self = .invalidToken
        }
    }

    /// The counter of docs/spec/observability.md §12.1 that counts this outcome on its own,
    /// besides `ekey_verify_failure_total`.
    var dedicatedCounter: String? {
        switch self {
        case .replayBlocked: "ekey_verify_replay_blocked_total"
        case .invalidProof: "ekey_verify_invalid_proof_total"
        default: nil
        }
    }
}
