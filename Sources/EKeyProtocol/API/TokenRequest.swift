/// The body of `POST /token` (docs/spec/issuer.md), fields of the original E-Key prototype.
public struct TokenRequest: Sendable, Hashable {
    public var audience: String
    public var capability: Capability
    /// Requested lifetime in seconds (1...60); `nil` means the template's `max_ttl`.
    public var ttl: Int64?
    public var bind: BindingMode
    /// The public key to bind to (DPoP, mTLS-authenticated callers without a proof).
    public var jwk: JWK?
    /// A delegated subject, allowed only by policy.
    public var subject: String?
    /// An external OIDC JWT for token exchange.
    public var subjectToken: String?

    /// Creates a request.
    public init(
        audience: String, capability: Capability, ttl: Int64? = nil, bind: BindingMode, jwk: JWK? = nil,
        subject: String? = nil, subjectToken: String? = nil
    ) {
        self.audience = audience
        self.capability = capability
        self.ttl = ttl
        self.bind = bind
        self.jwk = jwk
        self.subject = subject
        self.subjectToken = subjectToken
    }

    /// Reads a request body; every schema defect is 400 `invalid_request`.
    public init(body: [UInt8]) throws(EKeyError) {
        let members = try StrictJSONParser().parseObject(body) { EKeyError(.invalidRequest, "the body must be a JSON object: \($0)") }
        func optionalString(_ name: String) throws(EKeyError) -> String? {
            guard let value = members[name], value != .null else { return nil }
            guard let text = value.stringValue, !text.isEmpty else {
                throw EKeyError(.invalidRequest, "\"\(name)\" must be a non-empty string")
            }
            return text
        }
        guard let audience = try optionalString("aud") else {
            throw EKeyError(.invalidRequest, "\"aud\" is required: the audience the token is for")
        }
        guard let capabilityValue = members["cap"] else {
            throw EKeyError(.invalidRequest, "\"cap\" is required: {\"action\": \"METHOD:/path\", \"limit\": N}")
        }
        let capability = try Capability(json: capabilityValue)
        var ttl: Int64?
        if let value = members["ttl"], value != .null {
            guard let seconds = value.integerValue, (1...EKeyClaims.maximumLifetime).contains(seconds) else {
                throw EKeyError(.invalidRequest, "\"ttl\" must be an integer from 1 to \(EKeyClaims.maximumLifetime) seconds")
            }
            ttl = seconds
        }
        guard let bindText = try optionalString("bind"), let bind = BindingMode(rawValue: bindText) else {
            throw EKeyError(.invalidRequest, "\"bind\" must be \"DPoP\" or \"mTLS\"")
        }
        var jwk: JWK?
        if let value = members["jwk"], value != .null {
            do {
                // Parsing checked an EC or OKP key's point; an RSA key parses (for
                // thumbprints) but cannot sign the proofs this key is bound for.
                let parsed = try JWK(parsing: value, context: .publicOnly)
                if parsed.keyType == "RSA" { _ = try parsed.publicKey() }
                jwk = parsed
            } catch {
                throw EKeyError(.invalidRequest, "\"jwk\" is refused: \(error.reason)")
            }
        }
        self.init(
            audience: audience, capability: capability, ttl: ttl, bind: bind, jwk: jwk,
            subject: try optionalString("sub"), subjectToken: try optionalString("subject_token"))
    }

    /// The request body.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "aud": .string(audience), "cap": capability.jsonValue, "bind": .string(bind.rawValue),
        ]
        if let ttl { members["ttl"] = .integer(ttl) }
        if let jwk { members["jwk"] = jwk.publicJWK.jsonValue }
        if let subject { members["sub"] = .string(subject) }
        if let subjectToken { members["subject_token"] = .string(subjectToken) }
        return .object(members)
    }
}
