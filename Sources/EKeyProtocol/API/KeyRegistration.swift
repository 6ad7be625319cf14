/// The body of `POST /internal/v1/keys` (docs/spec/publisher.md): an issuer registers a public key.
public struct KeyRegistration: Sendable, Hashable {
    public var keyID: String
    /// The public JWK, carrying `kid` (equal to ``keyID``) and `alg`.
    public var jwk: JWK
    /// Epoch seconds after which the key signs nothing more; `nil` for no end yet.
    public var notAfter: Int64?

    /// Creates a registration.
    public init(keyID: String, jwk: JWK, notAfter: Int64? = nil) {
        self.keyID = keyID
        self.jwk = jwk
        self.notAfter = notAfter
    }

    /// Reads and checks a registration: public P-256/Ed25519 key only, `alg` present and
    /// matching, `jwk.kid` equal to `kid`. Defects are 400 `invalid_request`.
    public init(body: [UInt8]) throws(EKeyError) {
        let members = try StrictJSONParser().parseObject(body) { EKeyError(.invalidRequest, "the body must be a JSON object: \($0)") }
        guard let keyID = members["kid"]?.stringValue, !keyID.isEmpty, keyID.utf8.count <= 128 else {
            throw EKeyError(.invalidRequest, "\"kid\" must be a string of 1-128 characters")
        }
        guard let jwkValue = members["jwk"] else {
            throw EKeyError(.invalidRequest, "\"jwk\" is required")
        }
        let jwk: JWK
        let publicKey: PublicSigningKey
        do {
            jwk = try JWK(parsing: jwkValue, context: .publicOnly)
            publicKey = try jwk.publicKey()
        } catch {
            throw EKeyError(.invalidRequest, "\"jwk\" is refused: \(error.reason)")
        }
        guard let algorithmName = jwk.algorithmName else {
            throw EKeyError(.invalidRequest, "the jwk must carry \"alg\" (ES256 or EdDSA)")
        }
        guard jwk.keyID == keyID else {
            throw EKeyError(.invalidRequest, "jwk.kid must equal the body's kid")
        }
        guard let algorithm = try? JWSAlgorithm(headerValue: algorithmName) else {
            throw EKeyError(.invalidRequest, "jwk.alg must be ES256 or EdDSA")
        }
        guard algorithm == publicKey.algorithm else {
            throw EKeyError(.invalidRequest, "jwk.alg \(algorithmName) does not fit a \(jwk.keyType) key; use \(publicKey.algorithm.rawValue)")
        }
        var notAfter: Int64?
        if let value = members["not_after"], value != .null {
            guard let seconds = value.integerValue, seconds >= 0 else {
                throw EKeyError(.invalidRequest, "\"not_after\" must be epoch seconds")
            }
            notAfter = seconds
        }
        self.init(keyID: keyID, jwk: jwk, notAfter: notAfter)
    }

    /// The request body.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["kid": .string(keyID), "jwk": jwk.publicJWK.jsonValue]
        if let notAfter { members["not_after"] = .integer(notAfter) }
        return .object(members)
    }
}
