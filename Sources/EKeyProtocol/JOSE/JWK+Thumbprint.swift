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
        // The members are written in the list's (lexicographic) order, as the tree would
        // be serialized; parsing made every one of them a string.
        var canonical = JSONObjectWriter(capacity: 160)
        for name in names {
            if case .string(let value)? = members[name] { canonical.string(name, value) }
        }
        return Base64URL.encode(sha256(canonical.finish()))
    }
}
