import NIOConcurrencyHelpers
public import NIOSSL

/// The TLS configuration of an internal client (the issuer's to the publisher, the
/// gateway's to the key set), reloaded when its CA, certificate or key files change.
///
/// Requests set ``configuration`` on each call (`HTTPClientRequest.tlsConfiguration`), so
/// after a reload new connections present the new certificate; AsyncHTTPClient keeps one
/// connection pool per configuration, and the old pool's idle connections close on their own.
public final class ClientTLS: ReloadableTLS {
    private struct Files: Sendable {
        let ca: String
        let certificate: String?
        let key: String?
        var paths: [String] { [ca] + [certificate, key].compactMap { $0 } }
    }

    private struct Loaded {
        var configuration: TLSConfiguration
        var fingerprint: [UInt8]?
    }

    private let files: Files
    /// The config key of the files (`issuer.publisher`, `gateway.jwks`), named in logs.
    public let configKey: String
    private let loaded: NIOLockedValueBox<Loaded>

    /// Reads the files now (errors name them by their keys under `configKey`).
    public init(caFile: String, certificateFile: String?, keyFile: String?, configKey: String) throws {
        files = Files(ca: caFile, certificate: certificateFile, key: keyFile)
        self.configKey = configKey
        let configuration = try TLSSetup.client(
            caFile: caFile, certificateFile: certificateFile, keyFile: keyFile, configKey: configKey)
        loaded = NIOLockedValueBox(Loaded(configuration: configuration, fingerprint: try? TLSFileFingerprint.of(files.paths)))
    }

    /// The configuration new connections use.
    public var configuration: TLSConfiguration {
        loaded.withLockedValue { $0.configuration }
    }

    public func reload() -> TLSReloadOutcome {
        let fingerprint: [UInt8]
        do {
            fingerprint = try TLSFileFingerprint.of(files.paths)
        } catch {
            return .refused("\(configKey): cannot read the TLS files (\(error)); keeping the certificate in use")
        }
        guard fingerprint != loaded.withLockedValue({ $0.fingerprint }) else { return .unchanged }
        do {
            let configuration = try TLSSetup.client(
                caFile: files.ca, certificateFile: files.certificate, keyFile: files.key, configKey: configKey)
            // Fails here, not at the next handshake, when the key does not belong to the certificate.
            _ = try NIOSSLContext(configuration: configuration)
            loaded.withLockedValue { $0 = Loaded(configuration: configuration, fingerprint: fingerprint) }
            return .reloaded
        } catch {
            return .refused("\(configKey): \(error); keeping the certificate in use until the files hold a matching pair")
        }
    }
}
