public import NIOSSL

/// The TLS configuration of an internal client (the issuer's to the publisher, the
/// gateway's to the key set), reloaded when its CA, certificate or key files change.
///
/// Requests set ``configuration`` on each call (`HTTPClientRequest.tlsConfiguration`), so
/// after a reload new connections present the new certificate; AsyncHTTPClient keeps one
/// connection pool per configuration, and the old pool's idle connections close on their own.
public final class ClientTLS: ReloadableTLS {
    private let watched: WatchedTLSFiles<TLSConfiguration>
    /// The config key of the files (`issuer.publisher`, `gateway.jwks`), named in logs.
    public let configKey: String

    /// Reads the files now (errors name them by their keys under `configKey`).
    public init(caFile: String, certificateFile: String?, keyFile: String?, configKey: String) throws {
        self.configKey = configKey
        watched = try WatchedTLSFiles(paths: [caFile] + [certificateFile, keyFile].compactMap { $0 }) {
            let configuration = try TLSSetup.client(
                caFile: caFile, certificateFile: certificateFile, keyFile: keyFile, configKey: configKey)
            do {
                // A key that does not belong to the certificate fails here, not at the next handshake.
                _ = try NIOSSLContext(configuration: configuration)
            } catch {
                throw TLSSetupError(
                    description: "\(configKey): cannot use the certificate \(certificateFile ?? "-") with the key \(keyFile ?? "-") (\(error)); point both at the same certificate's files")
            }
            return configuration
        }
    }

    /// The configuration new connections use.
    public var configuration: TLSConfiguration { watched.material }

    public func reload() -> TLSReloadOutcome { watched.reload() }
}
