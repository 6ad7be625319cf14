/// The scheme of the `Authorization` header a client used (docs/spec/gateway.md step 1).
public enum AuthorizationScheme: String, Sendable, Hashable, CaseIterable {
    case dpop = "DPoP"
    case ekey = "EKey"
    case bearer = "Bearer"
}

extension EKeyError {
    /// The algorithms E-Key accepts in DPoP proofs, as advertised in `algs`.
    public static let advertisedDPoPAlgorithms = "ES256 EdDSA"

    /// The JSON error body: `{"error", "error_description"}`.
    public var body: JSONValue {
        .object(["error": .string(code.wireName), "error_description": .string(reason)])
    }

    /// The `WWW-Authenticate` values to send with this error (docs/spec/gateway.md, RFC 6750 §3, RFC 9449 §7.1).
    ///
    /// - Parameter scheme: the scheme of the client's `Authorization` header, or `nil` when
    ///   no token was sent; then both the DPoP and the EKey challenge are returned, without
    ///   an `error` attribute.
    /// - Returns: one value per challenge; empty for statuses other than 401 and 403.
    public func wwwAuthenticate(scheme: AuthorizationScheme?) -> [String] {
        guard status == 401 || status == 403 else { return [] }
        guard let scheme else {
            return ["DPoP algs=\"\(Self.advertisedDPoPAlgorithms)\"", "EKey"]
        }
        let attribute: String
        if status == 403 {
            attribute = "insufficient_scope"
        } else if let challengeCode {
            attribute = challengeCode
        } else {
            switch code {
            case .invalidToken, .expiredToken, .replayDetected: attribute = "invalid_token"
            case .useDPoPNonce: attribute = "use_dpop_nonce"
            case .invalidClient: attribute = "invalid_client"
            default: attribute = "invalid_request"
            }
        }
        var challenge = "\(scheme.rawValue) error=\"\(attribute)\""
        if scheme == .dpop {
            challenge += ", algs=\"\(Self.advertisedDPoPAlgorithms)\""
        }
        return [challenge]
    }
}
