public import Crypto

/// A public key E-Key can verify JWS signatures with.
public enum PublicSigningKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case ed25519(Curve25519.Signing.PublicKey)

    /// The one algorithm this key verifies.
    public var algorithm: JWSAlgorithm {
        switch self {
        case .p256: .es256
        case .ed25519: .edDSA
        }
    }

    /// Checks a raw JWS signature over `message`.
    ///
    /// ES256 signatures must be exactly 64 bytes (`r || s`); DER and any other length fail.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch self {
        case .p256(let key):
            guard signature.count == 64,
                let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return key.isValidSignature(ecdsa, for: sha256(message))
        case .ed25519(let key):
            guard signature.count == 64 else { return false }
            return key.isValidSignature(signature, for: message)
        }
    }

    /// The public JWK of this key (no `kid`, `alg` or `use`).
    public var jwk: JWK {
        switch self {
        case .p256(let key):
            let raw = Array(key.rawRepresentation)
            return JWK(validated: [
                "kty": "EC", "crv": "P-256",
                "x": .string(Base64URL.encode(raw[0..<32])),
                "y": .string(Base64URL.encode(raw[32..<64])),
            ])
        case .ed25519(let key):
            return JWK(validated: [
                "kty": "OKP", "crv": "Ed25519", "x": .string(Base64URL.encode(key.rawRepresentation)),
            ])
        }
    }
}

/// A private key E-Key signs with.
public enum PrivateSigningKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case ed25519(Curve25519.Signing.PrivateKey)

    /// Generates a fresh key for `algorithm`.
    public init(generating algorithm: JWSAlgorithm) {
        switch algorithm {
        case .es256: self = .p256(P256.Signing.PrivateKey())
        case .edDSA: self = .ed25519(Curve25519.Signing.PrivateKey())
        }
    }

    /// The algorithm this key signs with.
    public var algorithm: JWSAlgorithm {
        switch self {
        case .p256: .es256
        case .ed25519: .edDSA
        }
    }

    /// The matching public key.
    public var publicKey: PublicSigningKey {
        switch self {
        case .p256(let key): .p256(key.publicKey)
        case .ed25519(let key): .ed25519(key.publicKey)
        }
    }

    /// Signs `message`, giving the raw JWS signature (64 bytes for both algorithms).
    public func signature(for message: [UInt8]) throws -> [UInt8] {
        switch self {
        case .p256(let key): Array(try key.signature(for: sha256(message)).rawRepresentation)
        case .ed25519(let key): Array(try key.signature(for: message))
        }
    }

    /// The private JWK of this key (with `d`).
    public var jwk: JWK {
        var members = publicKey.jwk.members
        switch self {
        case .p256(let key): members["d"] = .string(Base64URL.encode(key.rawRepresentation))
        case .ed25519(let key): members["d"] = .string(Base64URL.encode(key.rawRepresentation))
        }
        return JWK(validated: members)
    }
}

/// The SHA-256 digest of `message`, hashed from its storage (no `DataProtocol` walk).
func sha256(_ message: [UInt8]) -> SHA256.Digest {
    var hasher = SHA256()
    message.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    return hasher.finalize()
}
