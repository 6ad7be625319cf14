/// The `201` body of `POST /token` (docs/spec/issuer.md).
public struct TokenResponse: Sendable, Hashable {
    public var token: String
    /// `DPoP` for DPoP-bound tokens, `EKey` for mTLS-bound ones.
    public var tokenType: String
    public var expiresIn: Int64
    public var expiresAt: Int64
    public var trace: String
    public var confirmation: Confirmation
    public var keyID: String

    /// Creates a response.
    public init(
        token: String, tokenType: String, expiresIn: Int64, expiresAt: Int64, trace: String,
        confirmation: Confirmation, keyID: String
    ) {
        self.token = token
        self.tokenType = tokenType
        self.expiresIn = expiresIn
        self.expiresAt = expiresAt
        self.trace = trace
        self.confirmation = confirmation
        self.keyID = keyID
    }

    /// The `token_type` for a binding mode.
    public static func tokenType(for bind: BindingMode) -> String {
        bind == .dpop ? "DPoP" : "EKey"
    }

    /// Reads a response body.
    public init(body: [UInt8]) throws(EKeyError) {
        let members = try StrictJSONParser().parseObject(body) { EKeyError(.invalidRequest, "the token response is not a JSON object: \($0)") }
        guard let token = members["token"]?.stringValue, let tokenType = members["token_type"]?.stringValue,
            let expiresIn = members["expires_in"]?.integerValue, let expiresAt = members["expires_at"]?.integerValue,
            let trace = members["trace"]?.stringValue, let cnf = members["cnf"], let keyID = members["kid"]?.stringValue
        else {
            throw EKeyError(.invalidRequest, "the token response lacks one of token, token_type, expires_in, expires_at, trace, cnf, kid")
        }
        do {
            confirmation = try Confirmation(json: cnf)
        } catch {
            throw EKeyError(.invalidRequest, "the token response's cnf is invalid: \(error.reason)")
        }
        self.token = token
        self.tokenType = tokenType
        self.expiresIn = expiresIn
        self.expiresAt = expiresAt
        self.trace = trace
        self.keyID = keyID
    }

    /// The response body.
    public var jsonValue: JSONValue {
        .object([
            "token": .string(token), "token_type": .string(tokenType), "expires_in": .integer(expiresIn),
            "expires_at": .integer(expiresAt), "trace": .string(trace), "cnf": confirmation.jsonValue,
            "kid": .string(keyID),
        ])
    }

    /// ``jsonValue``'s bytes, written directly.
    public func serializedBytes() -> [UInt8] {
        var writer = JSONObjectWriter(capacity: token.utf8.count + 192)
        writer.value("cnf") { $0.append(contentsOf: confirmation.serializedBytes()) }
        writer.integer("expires_at", expiresAt)
        writer.integer("expires_in", expiresIn)
        writer.string("kid", keyID)
        writer.string("token", token)
        writer.string("token_type", tokenType)
        writer.string("trace", trace)
        return writer.finish()
    }
}
