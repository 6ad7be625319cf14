/// A JWK Set (RFC 7517 §5): the document the publisher serves and the gateway caches.
public struct JWKSet: Sendable, Hashable {
    /// The keys, in document order.
    public var keys: [JWK]

    /// Creates a set.
    public init(keys: [JWK]) {
        self.keys = keys
    }

    /// Parses a JWKS document. Keys E-Key cannot use (other types, curves, private
    /// material) are skipped, as RFC 7517 §5 asks; a document that is not a JWKS throws.
    /// RSA public keys are kept only with `acceptingRSA` (external IdPs' key sets: E-Key
    /// tokens and proofs are never RSA).
    public init(parsing bytes: [UInt8], acceptingRSA: Bool = false) throws(JWSError) {
        let document = try StrictJSONParser().parseObject(bytes) { JWSError(.malformed, "the JWKS is not valid JSON: \($0)") }
        guard let entries = document["keys"]?.arrayValue else {
            throw JWSError(.malformed, "the JWKS has no \"keys\" array")
        }
        keys = entries.compactMap { entry in
            guard let key = try? JWK(parsing: entry, context: .publicOnly),
                acceptingRSA || key.keyType != "RSA", key.keyID != nil
            else { return nil }
            return key
        }
    }

    /// The key with `kid`, if present.
    public subscript(keyID keyID: String) -> JWK? {
        keys.first { $0.keyID == keyID }
    }

    /// The JSON document `{"keys": [...]}` with public members only.
    public var jsonValue: JSONValue {
        .object(["keys": .array(keys.map { $0.publicJWK.jsonValue })])
    }
}
