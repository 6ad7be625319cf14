/// The JWS algorithms E-Key signs and verifies with: an allow-list of two.
///
/// `none`, every HMAC (`HS*`), RSA (`RS*`, `PS*`) and other ECDSA curves are refused by
/// ``init(headerValue:)``, so a token can never choose a weaker check than its key.
public enum JWSAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// ECDSA over P-256 with SHA-256; signatures are the 64-byte `r || s` (RFC 7518 §3.4).
    case es256 = "ES256"
    /// Ed25519 (RFC 8037).
    case edDSA = "EdDSA"

    /// Reads the `alg` header value, refusing everything outside the allow-list.
    public init(headerValue: String) throws(JWSError) {
        guard let algorithm = JWSAlgorithm(rawValue: headerValue) else {
            throw JWSError(.unsupportedAlgorithm, "alg \"\(headerValue.prefix(32))\" is not accepted; use ES256 or EdDSA")
        }
        self = algorithm
    }
}

/// Why a JWS or JWK was refused.
public struct JWSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of defect, for mapping to wire codes and for tests.
    public enum Kind: String, Sendable, Hashable {
        case malformed
        case unsupportedAlgorithm
        case criticalHeader
        case algorithmKeyMismatch
        case invalidSignature
        case invalidKey
        case privateKeyMaterial
    }

    public let kind: Kind
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}
