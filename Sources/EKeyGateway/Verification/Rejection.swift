public import EKeyProtocol

/// Why the gateway refused a request: the wire error (code, status, reason), the scheme to
/// answer in, and the outcome it is counted and audited under (docs/spec/observability.md).
public struct Rejection: Error, Sendable {
    /// The error sent to the client.
    public var error: EKeyError
    /// The scheme of the client's `Authorization` header; `nil` when no token was sent.
    public var scheme: AuthorizationScheme?
    /// The audit outcome and metric label, named by the step that refused.
    public var outcome: VerificationOutcome
    /// Extra response headers, such as `DPoP-Nonce`.
    public var headers: [(String, String)] = []
    /// The verified token's claims, once its signature held (for the audit event).
    public var token: EKeyClaims?

    /// Creates a rejection.
    public init(_ error: EKeyError, scheme: AuthorizationScheme?, outcome: VerificationOutcome, token: EKeyClaims? = nil) {
        self.error = error
        self.scheme = scheme
        self.outcome = outcome
        self.token = token
    }
}
