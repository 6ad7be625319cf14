public import EKeyConfig
public import NIOSSL

/// Why TLS material could not be loaded; the message names the file and the fix.
public struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// Builds swift-nio-ssl configurations from E-Key's TLS settings (docs/configuration.md).
public enum TLSSetup {
    /// ECDHE with AEAD only, for `min_version: "1.2"` (TLS 1.3 suites are always AEAD).
    public static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// A server configuration: certificate chain and key from PEM files, TLS 1.3 minimum
    /// unless `minimumVersion` says 1.2, client certificates per `clientCertificates`
    /// validated against the CA file `clientCA` (and only that CA). Errors name the files
    /// by their keys under `configKey` (such as `gateway.tls`); a key that does not belong
    /// to the certificate is found here, before the service opens anything.
    public static func server(
        certificateFile: String, keyFile: String, clientCAFile: String?, clientCertificates: ClientAuthMode,
        minimumVersion: TLSMinimumVersion = .tls13, configKey: String = "tls"
    ) throws -> TLSConfiguration {
        let chain = try loadCertificates(certificateFile, role: "\(configKey).cert")
        let key = try loadPrivateKey(keyFile, role: "\(configKey).key")
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        apply(minimumVersion, to: &configuration)
        switch clientCertificates {
        case .none:
            configuration.certificateVerification = .none
        case .optional, .required:
            guard let clientCAFile else {
                throw TLSSetupError(description: "\(configKey).client_auth is \(clientCertificates.rawValue) but \(configKey).client_ca is not set; name the CA file that issues client certificates")
            }
            configuration.trustRoots = .certificates(try loadCertificates(clientCAFile, role: "\(configKey).client_ca"))
            configuration.sendCANameList = true
            configuration.certificateVerification = clientCertificates == .required ? .noHostnameVerification : .optionalVerification
        }
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw TLSSetupError(
                description: "\(configKey).key: \(keyFile) does not belong to the certificate \(certificateFile) (\(configKey).cert); point both at the same certificate's files")
        } catch {
            throw TLSSetupError(
                description: "\(configKey): cannot use the certificate \(certificateFile) with the key \(keyFile) (\(error)); check both files")
        }
        return configuration
    }

    /// A client configuration for internal HTTP/2 over mutual TLS: trust only `caFile`,
    /// present `certificateFile`/`keyFile` when given. Errors name the files by their keys
    /// under `configKey` (such as `issuer.publisher`), when given.
    public static func client(
        caFile: String, certificateFile: String?, keyFile: String?, minimumVersion: TLSMinimumVersion = .tls13, configKey: String? = nil
    ) throws -> TLSConfiguration {
        func role(_ name: String) -> String { configKey.map { "\($0).\(name)" } ?? name }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try loadCertificates(caFile, role: role("ca")))
        if let certificateFile, let keyFile {
            configuration.certificateChain = try loadCertificates(certificateFile, role: role("cert")).map { .certificate($0) }
            configuration.privateKey = .privateKey(try loadPrivateKey(keyFile, role: role("key")))
        }
        apply(minimumVersion, to: &configuration)
        return configuration
    }

    private static func apply(_ minimumVersion: TLSMinimumVersion, to configuration: inout TLSConfiguration) {
        switch minimumVersion {
        case .tls13:
            configuration.minimumTLSVersion = .tlsv13
        case .tls12:
            configuration.minimumTLSVersion = .tlsv12
            configuration.cipherSuiteValues = tls12CipherSuites
        }
    }

    /// Reads every certificate of a PEM file.
    public static func loadCertificates(_ path: String, role: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw TLSSetupError(description: "\(role): cannot read PEM certificates from \(path) (\(error)); check the path and that the file holds '-----BEGIN CERTIFICATE-----' blocks")
        }
        guard !certificates.isEmpty else {
            throw TLSSetupError(description: "\(role): \(path) holds no PEM certificate")
        }
        return certificates
    }

    /// Reads a PEM private key: SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    public static func loadPrivateKey(_ path: String, role: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw TLSSetupError(description: "\(role): cannot read a PEM private key (SEC1 or PKCS#8) from \(path) (\(error)); check the path, permissions and that the key is not encrypted")
        }
    }
}
