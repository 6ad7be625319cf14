import Crypto

/// A JSON Web Key (RFC 7517) as E-Key reads and writes it.
///
/// Signing keys are EC P-256 (`ES256`) and OKP Ed25519 (`EdDSA`), public or private. RSA
/// public keys parse too, for RFC 7638 thumbprints only; they never verify anything.
/// Parsing checks every member E-Key relies on: the curve, coordinate lengths, that the
/// point is on the curve, and (with ``Context/publicOnly``) that no private member is present.
public struct JWK: Sendable, Hashable {
    /// Whether private key members may appear.
    public enum Context: Sendable {
        /// Any private member (`d`, and RSA's `p`, `q`, `dp`, `dq`, `qi`, `oth`) is refused.
        case publicOnly
        /// Private members are accepted and checked against the public ones.
        case allowPrivate
    }

    /// All members, as parsed or built.
    public private(set) var members: [String: JSONValue]

    private static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]

    init(validated members: [String: JSONValue]) {
        self.members = members
    }

    /// Parses and validates a JWK object.
    public init(parsing value: JSONValue, context: Context) throws(JWSError) {
        guard let members = value.objectValue else {
            throw JWSError(.invalidKey, "a JWK must be a JSON object")
        }
        guard let keyType = members["kty"]?.stringValue else {
            throw JWSError(.invalidKey, "the JWK has no \"kty\" string")
        }
        if context == .publicOnly, let member = Self.privateMembers.first(where: { members[$0] != nil }) {
            throw JWSError(.privateKeyMaterial, "the JWK carries private member \"\(member)\"; send the public key only")
        }
        for name in ["kid", "alg", "use", "crv", "x", "y", "d", "n", "e"] {
            if let member = members[name], member.stringValue == nil {
                throw JWSError(.invalidKey, "the JWK member \"\(name)\" must be a string")
            }
        }
        switch keyType {
        case "EC":
            guard members["crv"]?.stringValue == "P-256" else {
                throw JWSError(.invalidKey, "only the EC curve P-256 is accepted")
            }
            let x = try Self.fixedLengthMember("x", of: members, length: 32)
            let y = try Self.fixedLengthMember("y", of: members, length: 32)
            guard let publicKey = try? P256.Signing.PublicKey(rawRepresentation: x + y) else {
                throw JWSError(.invalidKey, "the EC point (x, y) is not on P-256")
            }
            if members["d"] != nil {
                let d = try Self.fixedLengthMember("d", of: members, length: 32)
                guard let privateKey = try? P256.Signing.PrivateKey(rawRepresentation: d),
                    privateKey.publicKey.rawRepresentation == publicKey.rawRepresentation
                else { throw JWSError(.invalidKey, "the EC private key \"d\" does not match (x, y)") }
            }
            try Self.checkAlgorithm(members, expected: .es256)
        case "OKP":
            guard members["crv"]?.stringValue == "Ed25519" else {
                throw JWSError(.invalidKey, "only the OKP curve Ed25519 is accepted")
            }
            let x = try Self.fixedLengthMember("x", of: members, length: 32)
            if members["d"] != nil {
                let d = try Self.fixedLengthMember("d", of: members, length: 32)
                guard let privateKey = try? Curve25519.Signing.PrivateKey(rawRepresentation: d),
                    Array(privateKey.publicKey.rawRepresentation) == x
                else { throw JWSError(.invalidKey, "the Ed25519 private key \"d\" does not match \"x\"") }
            }
            try Self.checkAlgorithm(members, expected: .edDSA)
        case "RSA":
            guard let n = members["n"]?.stringValue, let e = members["e"]?.stringValue,
                (try? Base64URL.decode(n)) != nil, (try? Base64URL.decode(e)) != nil
            else { throw JWSError(.invalidKey, "an RSA JWK needs base64url \"n\" and \"e\"") }
        default:
            throw JWSError(.invalidKey, "JWK kty \"\(keyType.prefix(16))\" is not accepted; use EC P-256 or OKP Ed25519")
        }
        self.members = members
    }

    /// The key type (`EC`, `OKP` or `RSA`).
    public var keyType: String { members["kty"]?.stringValue ?? "" }
    /// The key ID, when set.
    public var keyID: String? { members["kid"]?.stringValue }
    /// The declared algorithm, when set.
    public var algorithmName: String? { members["alg"]?.stringValue }
    /// Whether private material (`d`) is present.
    public var isPrivate: Bool { members["d"] != nil }

    /// A copy with `kid`, `alg` and `use` set (nil removes a member).
    public func with(keyID: String?, algorithm: JWSAlgorithm?, use: String? = "sig") -> JWK {
        var copy = members
        copy["kid"] = keyID.map(JSONValue.string)
        copy["alg"] = algorithm.map { .string($0.rawValue) }
        copy["use"] = use.map(JSONValue.string)
        return JWK(validated: copy)
    }

    /// The public part of this key: private members removed.
    public var publicJWK: JWK {
        JWK(validated: members.filter { !Self.privateMembers.contains($0.key) })
    }

    /// The key as a verifier. RSA keys throw: E-Key verifies ES256 and EdDSA only.
    public func publicKey() throws(JWSError) -> PublicSigningKey {
        switch keyType {
        case "EC":
            let raw = try Self.fixedLengthMember("x", of: members, length: 32)
                + Self.fixedLengthMember("y", of: members, length: 32)
            guard let key = try? P256.Signing.PublicKey(rawRepresentation: raw) else {
                throw JWSError(.invalidKey, "the EC point (x, y) is not on P-256")
            }
            return .p256(key)
        case "OKP":
            let raw = try Self.fixedLengthMember("x", of: members, length: 32)
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
                throw JWSError(.invalidKey, "\"x\" is not an Ed25519 public key")
            }
            return .ed25519(key)
        default:
            throw JWSError(.invalidKey, "a \(keyType) key cannot verify E-Key signatures; use EC P-256 or OKP Ed25519")
        }
    }

    /// The key as a signer; the JWK must hold `d`.
    public func privateKey() throws(JWSError) -> PrivateSigningKey {
        guard members["d"] != nil else { throw JWSError(.invalidKey, "the JWK has no private member \"d\"") }
        let d = try Self.fixedLengthMember("d", of: members, length: 32)
        switch keyType {
        case "EC":
            guard let key = try? P256.Signing.PrivateKey(rawRepresentation: d) else {
                throw JWSError(.invalidKey, "\"d\" is not a P-256 private key")
            }
            return .p256(key)
        case "OKP":
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: d) else {
                throw JWSError(.invalidKey, "\"d\" is not an Ed25519 private key")
            }
            return .ed25519(key)
        default:
            throw JWSError(.invalidKey, "a \(keyType) key cannot sign E-Keys; use EC P-256 or OKP Ed25519")
        }
    }

    /// The JSON object of this key.
    public var jsonValue: JSONValue { .object(members) }

    private static func fixedLengthMember(
        _ name: String, of members: [String: JSONValue], length: Int
    ) throws(JWSError) -> [UInt8] {
        guard let text = members[name]?.stringValue else {
            throw JWSError(.invalidKey, "the JWK has no \"\(name)\" member")
        }
        guard let bytes = try? Base64URL.decode(text), bytes.count == length else {
            throw JWSError(.invalidKey, "the JWK member \"\(name)\" must be \(length) bytes in base64url")
        }
        return bytes
    }

    private static func checkAlgorithm(_ members: [String: JSONValue], expected: JWSAlgorithm) throws(JWSError) {
        if let declared = members["alg"]?.stringValue, declared != expected.rawValue {
            throw JWSError(.algorithmKeyMismatch, "the JWK declares alg \"\(declared.prefix(16))\" but its key type signs \(expected.rawValue)")
        }
    }
}
