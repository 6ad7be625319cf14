/// An E-Key protocol failure: the wire code of docs/spec/gateway.md (or §3 for the issuer), the
/// HTTP status it maps to, and a reason for the error description.
///
/// Compared by ``code`` only, like `CertificateError` in swift-certificates.
public struct EKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The wire error code (`{"error": "<code>"}`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The string sent in the `error` member.
        public let wireName: String
        /// The HTTP status this code is sent with, unless the error overrides it.
        public let defaultStatus: Int

        private init(_ wireName: String, _ status: Int) {
            self.wireName = wireName
            self.defaultStatus = status
        }

        public var description: String { wireName }

        public static let invalidRequest = Code("invalid_request", 400)
        public static let invalidToken = Code("invalid_token", 401)
        public static let expiredToken = Code("expired_token", 401)
        public static let invalidProof = Code("invalid_proof", 401)
        public static let replayDetected = Code("replay_detected", 401)
        public static let useDPoPNonce = Code("use_dpop_nonce", 401)
        public static let capabilityMismatch = Code("capability_mismatch", 403)
        public static let temporarilyUnavailable = Code("temporarily_unavailable", 503)
        public static let badGateway = Code("bad_gateway", 502)
        public static let gatewayTimeout = Code("gateway_timeout", 504)
        public static let invalidClient = Code("invalid_client", 401)
        public static let accessDenied = Code("access_denied", 403)
        public static let rateLimited = Code("rate_limited", 429)
        /// The publisher refuses a signing key whose kid an administrator revoked.
        public static let keyRevoked = Code("key_revoked", 410)

        /// Every code, for tables and tests.
        public static let all: [Code] = [
            .invalidRequest, .invalidToken, .expiredToken, .invalidProof, .replayDetected, .useDPoPNonce,
            .capabilityMismatch, .temporarilyUnavailable, .badGateway, .gatewayTimeout, .invalidClient,
            .accessDenied, .rateLimited, .keyRevoked,
        ]
    }

    /// The wire code.
    public let code: Code
    /// The HTTP status to answer with.
    public let status: Int
    /// What happened and, where it helps, what to do; sent as `error_description`.
    public let reason: String
    /// The RFC 6750 / RFC 9449 `error` attribute for `WWW-Authenticate`, when it differs from ``code``.
    public let challengeCode: String?
    /// Where the error was raised, for logs.
    public let location: String

    /// Creates an error with the code's default status.
    public init(
        _ code: Code,
        _ reason: String,
        status: Int? = nil,
        challengeCode: String? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.status = status ?? code.defaultStatus
        self.reason = reason
        self.challengeCode = challengeCode
        self.location = "\(file):\(line)"
    }

    public static func == (lhs: EKeyError, rhs: EKeyError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code.wireName) (\(status)): \(reason)" }

    // MARK: Factories for the cases whose status or challenge differ from the code's default.

    /// No token was sent: 401 `invalid_request`, answered with the bare challenges.
    public static func missingToken(file: String = #fileID, line: Int = #line) -> EKeyError {
        EKeyError(
            .invalidRequest,
            "no E-Key in the Authorization header; send 'Authorization: DPoP <token>' with a DPoP proof, or 'Authorization: EKey <token>' over mTLS",
            status: 401, file: file, line: line)
    }

    /// The DPoP proof is missing or fails (`invalid_dpop_proof` in the challenge).
    public static func invalidDPoPProof(_ reason: String, file: String = #fileID, line: Int = #line) -> EKeyError {
        EKeyError(.invalidProof, reason, challengeCode: "invalid_dpop_proof", file: file, line: line)
    }

    /// The TLS client certificate does not match the token's `cnf` (`invalid_token` in the challenge).
    public static func certificateBindingFailed(_ reason: String, file: String = #fileID, line: Int = #line) -> EKeyError {
        EKeyError(.invalidProof, reason, challengeCode: "invalid_token", file: file, line: line)
    }
}
