import Crypto
public import EKeyProtocol
import Foundation

/// Reads `issuer.signing.key_file`: a PEM private key, SEC1 (`EC PRIVATE KEY`) or PKCS#8
/// (`PRIVATE KEY`), P-256 or Ed25519 (docs/spec/issuer.md, docs/configuration.md).
public enum SigningKeyFile {
    /// The PKCS#8 prefix of every unencrypted Ed25519 key (RFC 8410 §7): SEQUENCE, version 0,
    /// AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING (32 bytes) }.
    private static let ed25519PKCS8Prefix: [UInt8] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    /// Loads the key at `path`; `expected` (an explicit `signing.alg`) must agree with it.
    public static func load(path: String, expected: JWSAlgorithm?) throws(IssuerSetupError) -> PrivateSigningKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw IssuerSetupError("issuer.signing.key_file: cannot read \(path) (\(error)); check the path and permissions")
        }
        let key = try parse(pem: text, path: path)
        if let expected, key.algorithm != expected {
            throw IssuerSetupError(
                "issuer.signing.key_file \(path) holds a \(key.algorithm.rawValue) key but signing.alg is \(expected.rawValue); remove alg or use a matching key")
        }
        return key
    }

    /// Parses a PEM private key.
    public static func parse(pem text: String, path: String = "key_file") throws(IssuerSetupError) -> PrivateSigningKey {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: text) {
            return .p256(key)
        }
        if let der = pkcs8Body(text), der.count == ed25519PKCS8Prefix.count + 32, der.starts(with: ed25519PKCS8Prefix),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        {
            return .ed25519(key)
        }
        throw IssuerSetupError(
            "issuer.signing.key_file \(path) is not an unencrypted PEM P-256 (SEC1 or PKCS#8) or Ed25519 (PKCS#8) private key; generate one with `ekey keygen` or `openssl genpkey -algorithm ed25519`")
    }

    private static func pkcs8Body(_ text: String) -> [UInt8]? {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(of: "-----BEGIN PRIVATE KEY-----"),
            let end = lines[begin...].firstIndex(of: "-----END PRIVATE KEY-----")
        else { return nil }
        return Data(base64Encoded: lines[(begin + 1)..<end].joined()).map(Array.init)
    }
}
