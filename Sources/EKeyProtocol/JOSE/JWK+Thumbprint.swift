import Crypto

extension JWK {
    /// The members RFC 7638 §3.2 hashes for each key type, in lexicographic order.
    private static let thumbprintMembers: [String: [String]] = [
        "EC": ["crv", "kty", "x", "y"],
        "OKP": ["crv", "kty", "x"],
        "RSA": ["e", "kty", "n"],
    ]

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url (the DPoP `jkt`).
    public var thumbprint: String {
        let names = Self.thumbprintMembers[keyType] ?? []
        var required: [String: JSONValue] = [:]
        for name in names {
            required[name] = members[name]
        }
        let canonical = JSONValue.object(required).serializedBytes()
        return Base64URL.encode(SHA256.hash(data: canonical))
    }
}
