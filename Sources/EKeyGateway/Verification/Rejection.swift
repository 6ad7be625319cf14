public import EKeyProtocol

/// Why the gateway refused a request: the wire error, the scheme to answer in, and the
/// names it is counted and audited under (docs/spec/observability.md).
public struct Rejection: Error, Sendable {
    /// The error sent to the client.
    public var error: EKeyError
    /// The scheme of the client's `Authorization` header; `nil` when no token was sent.
    public var scheme: AuthorizationScheme?
    /// The audit `outcome` (`invalid_token`, `expired`, `replay_blocked` ...).
    public var outcome: String
    /// Extra response headers, such as `DPoP-Nonce`.
    public var headers: [(String, String)] = []
    /// The verified token's claims, once its signature held (for the audit event).
    public var token: EKeyClaims?

    /// Creates a rejection.
    public init(_ error: EKeyError, scheme: AuthorizationScheme?, outcome: String, token: EKeyClaims? = nil) {
        self.error = error
        self.scheme = scheme
        self.outcome = outcome
        self.token = token
    }

    /// The audit outcome for a protocol error raised by a verification step.
    static func outcome(for error: EKeyError) -> String {
        switch error.code {
        case .expiredToken: "expired"
        case .invalidProof: "invalid_proof"
        case .useDPoPNonce: "nonce_required"
        case .replayDetected: "replay_blocked"
        case .capabilityMismatch: "capability_mismatch"
        case .temporarilyUnavailable: "store_unavailable"
        case .invalidRequest: "invalid_request"
        default: "invalid_token"
        }
    }
}
