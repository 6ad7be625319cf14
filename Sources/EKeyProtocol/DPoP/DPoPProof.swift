/// A DPoP proof JWT (RFC 9449 §4.2): its claims, and how to make one.
public struct DPoPProof: Sendable, Hashable {
    /// The `typ` header of every DPoP proof.
    public static let type = "dpop+jwt"
    /// The longest accepted `jti`.
    public static let maximumJTILength = 128

    public var jti: String
    public var method: String
    public var url: String
    public var issuedAt: Int64
    /// `ath`: base64url SHA-256 of the access token, for resource requests.
    public var accessTokenHash: String?
    /// `nonce`: a server nonce, or (E-Key prototype form) the token's trace.
    public var nonce: String?

    /// Creates proof claims; `jti` defaults to 128 random bits.
    public init(
        method: String, url: String, issuedAt: Int64, jti: String = DPoPProof.randomJTI(),
        accessTokenHash: String? = nil, nonce: String? = nil
    ) {
        self.jti = jti
        self.method = method
        self.url = url
        self.issuedAt = issuedAt
        self.accessTokenHash = accessTokenHash
        self.nonce = nonce
    }

    /// The claims as JSON.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "jti": .string(jti), "htm": .string(method), "htu": .string(url), "iat": .integer(issuedAt),
        ]
        if let accessTokenHash { members["ath"] = .string(accessTokenHash) }
        if let nonce { members["nonce"] = .string(nonce) }
        return .object(members)
    }

    /// Signs the proof with `key`, embedding its public JWK.
    public func signed(with key: PrivateSigningKey) throws -> String {
        try JWSCompact.sign(
            header: ["typ": .string(Self.type), "jwk": key.publicKey.jwk.jsonValue],
            payload: jsonValue.serializedBytes(),
            using: key)
    }

    /// 16 random bytes, base64url.
    public static func randomJTI() -> String {
        Base64URL.encode(RandomBytes.make(16))
    }
}
