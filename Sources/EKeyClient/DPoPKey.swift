import Crypto
public import EKeyProtocol
import Foundation

/// A DPoP key (RFC 9449): the private key a workload proves possession of, kept on disk as
/// an unencrypted PKCS#8 PEM file readable by its owner only (mode 0600).
///
/// ```swift
/// let key = try DPoPKey.loadOrCreate(path: ".ekey/my-dpop.key")          // P-256 by default
/// print(key.thumbprint)                                                   // register it with the issuer
/// let proof = try key.proof(method: "POST", url: "https://api.example.com/payments", accessToken: token)
/// ```
public struct DPoPKey: Sendable {
    /// The private key.
    public let privateKey: PrivateSigningKey

    /// Wraps an existing key.
    public init(_ privateKey: PrivateSigningKey) {
        self.privateKey = privateKey
    }

    /// A fresh key: `ES256` (P-256) or `EdDSA` (Ed25519).
    public static func generate(_ algorithm: JWSAlgorithm = .es256) -> DPoPKey {
        DPoPKey(PrivateSigningKey(generating: algorithm))
    }

    /// The JWS algorithm the key signs with.
    public var algorithm: JWSAlgorithm { privateKey.algorithm }

    /// The public JWK (no private members).
    public var publicJWK: JWK { privateKey.publicKey.jwk }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the `cnf.jkt` of tokens bound to this key,
    /// and the `jkt` to register in `issuer.clients`.
    public var thumbprint: String { publicJWK.thumbprint }

    /// Makes a DPoP proof for one request.
    /// - Parameters:
    ///   - method: the HTTP method (`htm`).
    ///   - url: the request URL (`htu`); the query and fragment are removed as RFC 9449 asks.
    ///   - accessToken: the token the request carries; its hash goes into `ath`.
    ///   - nonce: a server nonce (`DPoP-Nonce`), when the server asked for one.
    ///   - issuedAt: the `iat`, epoch seconds (default now).
    public func proof(method: String, url: String, accessToken: String? = nil, nonce: String? = nil, issuedAt: Int64? = nil) throws
        -> String
    {
        let proof = DPoPProof(
            method: method.uppercased(), url: Self.htu(url), issuedAt: issuedAt ?? Int64(Date().timeIntervalSince1970),
            accessTokenHash: accessToken.map(EKeyToken.accessTokenHash), nonce: nonce)
        return try proof.signed(with: privateKey)
    }

    /// `url` without query and fragment.
    static func htu(_ url: String) -> String {
        var text = Substring(url)
        if let index = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = text[..<index] }
        return String(text)
    }

    // MARK: PEM

    /// The PKCS#8 prefix of an unencrypted Ed25519 key (RFC 8410 §7).
    private static let ed25519PKCS8Prefix: [UInt8] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), readable by OpenSSL and joserfc.
    public var pemRepresentation: String {
        switch privateKey {
        case .p256(let key):
            return key.pemRepresentation + "\n"
        case .ed25519(let key):
            let der = Data(Self.ed25519PKCS8Prefix + Array(key.rawRepresentation))
            let base64 = der.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
            return "-----BEGIN PRIVATE KEY-----\n\(base64)\n-----END PRIVATE KEY-----\n"
        }
    }

    /// Reads a PEM private key: P-256 (SEC1 or PKCS#8) or Ed25519 (PKCS#8).
    public init(pem text: String) throws(EKeyClientError) {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: text) {
            self.init(.p256(key))
            return
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        if let begin = lines.firstIndex(of: "-----BEGIN PRIVATE KEY-----"),
            let end = lines[begin...].firstIndex(of: "-----END PRIVATE KEY-----"),
            let der = Data(base64Encoded: lines[(begin + 1)..<end].joined()).map({ [UInt8]($0) }),
            der.count == Self.ed25519PKCS8Prefix.count + 32, der.starts(with: Self.ed25519PKCS8Prefix),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        {
            self.init(.ed25519(key))
            return
        }
        throw EKeyClientError(
            "not an unencrypted PEM P-256 or Ed25519 private key; create one with `ekey keygen --out FILE [--alg ES256|EdDSA]`")
    }

    /// Loads the key at `path`.
    public static func load(path: String) throws(EKeyClientError) -> DPoPKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw EKeyClientError("cannot read the DPoP key \(path): create it with `ekey keygen --out \(path)` or pass another --key")
        }
        do {
            return try DPoPKey(pem: text)
        } catch {
            throw EKeyClientError("\(path): \(error.errorDescription)")
        }
    }

    /// Loads the key at `path`, creating it (mode 0600) when the file does not exist.
    public static func loadOrCreate(path: String, algorithm: JWSAlgorithm = .es256) throws(EKeyClientError) -> DPoPKey {
        if FileManager.default.fileExists(atPath: path) {
            return try load(path: path)
        }
        let key = generate(algorithm)
        try key.write(to: path)
        return key
    }

    /// Writes the key as PKCS#8 PEM with mode 0600; refuses to replace a file unless `overwrite`.
    public func write(to path: String, overwrite: Bool = false) throws(EKeyClientError) {
        try SecretFile.write(Array(pemRepresentation.utf8), to: path, overwrite: overwrite)
    }
}

/// Writes private files: created with mode 0600 from the start, never world-readable.
public enum SecretFile {
    /// Writes `bytes` to `path` with mode 0600; refuses an existing file unless `overwrite`.
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool = false) throws(EKeyClientError) {
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            guard overwrite else { throw EKeyClientError("\(path) exists; pass --force to replace it, or choose another path") }
            try? manager.removeItem(atPath: path)
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let created = manager.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        guard created else { throw EKeyClientError("cannot write \(path): check that its folder exists and is writable") }
        try? manager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }
}
