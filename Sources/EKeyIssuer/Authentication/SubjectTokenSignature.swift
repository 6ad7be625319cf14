import Crypto
import CryptoExtras
public import EKeyProtocol
import Foundation

/// The signature check of an external IdP's subject token (token exchange, docs/spec/issuer.md).
///
/// E-Key's own tokens and proofs are ES256 or EdDSA only; IdPs such as GitHub Actions,
/// Google or Azure AD sign with RS256, so subject tokens may also be RS256 (RSASSA
/// PKCS#1 v1.5 with SHA-256, RFC 7518 §3.3) with an RSA key of at least 2048 bits. Every
/// other algorithm (`none`, HMAC, PS*, ES384...) is refused.
public struct SubjectToken: Sendable {
    /// The `kid` header, if any.
    public let keyID: String?
    /// The `alg` header.
    public let algorithm: String
    /// The payload bytes (not yet trusted).
    public let payload: [UInt8]
    private let signingInput: [UInt8]
    private let signature: [UInt8]
    private let compact: String

    /// Splits and decodes a compact JWS; refuses unknown algorithms and `crit`.
    public init(parsing token: String) throws(EKeyError) {
        guard token.utf8.count <= 16 * 1024 else { throw Self.refused("it is over 16 KiB") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[2].isEmpty else { throw Self.refused("it is not a compact JWS") }
        let header: [String: JSONValue]
        do {
            header = try StrictJSONParser().parseObject(try Base64URL.decode(parts[0]))
            payload = try Base64URL.decode(parts[1])
            signature = try Base64URL.decode(parts[2])
        } catch {
            throw Self.refused("its parts are not valid base64url JSON")
        }
        guard let algorithm = header["alg"]?.stringValue, ["RS256", "ES256", "EdDSA"].contains(algorithm) else {
            throw Self.refused("its alg must be RS256, ES256 or EdDSA")
        }
        guard header["crit"] == nil else { throw Self.refused("it carries crit headers") }
        self.algorithm = algorithm
        keyID = header["kid"]?.stringValue
        signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        compact = token
    }

    /// Verifies the signature with `key`, whose type must fit the algorithm.
    public func verify(with key: JWK) throws(EKeyError) {
        if algorithm == "RS256" {
            guard key.keyType == "RSA", key.algorithmName == nil || key.algorithmName == "RS256",
                let n = key.members["n"]?.stringValue, let e = key.members["e"]?.stringValue,
                let modulus = try? Base64URL.decode(n), let exponent = try? Base64URL.decode(e)
            else { throw Self.refused("the IdP key for it is not an RS256 RSA key") }
            let publicKey: _RSA.Signing.PublicKey
            do {
                publicKey = try _RSA.Signing.PublicKey(n: modulus, e: exponent)
            } catch {
                throw Self.refused("the IdP's RSA key is unusable or under 2048 bits")
            }
            let valid = publicKey.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5)
            guard valid else { throw Self.refused("its signature does not verify with the IdP's keys") }
            return
        }
        do {
            let jws = try JWSCompact(parsing: compact, maximumLength: 16 * 1024)
            try jws.verify(using: try key.publicKey())
        } catch {
            throw Self.refused("its signature does not verify with the IdP's keys (\(error.reason))")
        }
    }

    static func refused(_ reason: String) -> EKeyError {
        EKeyError(.invalidClient, "the subject_token is refused: \(reason)")
    }
}
