public import EKeyProtocol

/// Step 1: the token from `Authorization: EKey <jwt>`, `DPoP <jwt>` or (mTLS-bound tokens
/// only) `Bearer <jwt>`; the scheme is case-insensitive and any other scheme counts as no
/// token.
public enum TokenExtraction {
    /// The extracted token and the scheme it came in.
    public struct Extracted: Sendable {
        public let scheme: AuthorizationScheme
        public let token: String
    }

    /// Reads the `Authorization` header values of a request.
    public static func extract(authorization values: [String]) throws(Rejection) -> Extracted {
        guard values.count <= 1 else {
            throw Rejection(EKeyError(.invalidRequest, "send exactly one Authorization header"), scheme: nil, outcome: .invalidRequest)
        }
        guard let value = values.first, let space = value.firstIndex(of: " ") else {
            throw Rejection(.missingToken(), scheme: nil, outcome: .invalidRequest)
        }
        let schemeName = value[..<space].lowercased()
        guard let scheme = AuthorizationScheme.allCases.first(where: { $0.rawValue.lowercased() == schemeName }) else {
            throw Rejection(.missingToken(), scheme: nil, outcome: .invalidRequest)
        }
        let token = value[value.index(after: space)...].drop { $0 == " " }
        guard !token.isEmpty else {
            throw Rejection(.missingToken(), scheme: nil, outcome: .invalidRequest)
        }
        guard token.utf8.count <= EKeyToken.maximumLength else {
            throw Rejection(
                EKeyError(.invalidRequest, "the token is over \(EKeyToken.maximumLength) bytes; E-Keys are small, check what is sent"),
                scheme: scheme, outcome: .invalidRequest)
        }
        return Extracted(scheme: scheme, token: String(token))
    }
}
