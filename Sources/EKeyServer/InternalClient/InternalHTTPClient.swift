public import AsyncHTTPClient
import NIOCore
public import NIOSSL

/// The HTTP client services use to talk to each other: HTTP/2 (negotiated by ALPN) over
/// mutual TLS, trusting only the internal CA.
public enum InternalHTTPClient {
    /// A client presenting `certificateFile`/`keyFile` and trusting only `caFile`; errors
    /// name the files by their keys under `configKey` (such as `gateway.jwks`), when given.
    /// The client must be shut down; a service registers it with ``StartupResources``.
    public static func make(caFile: String, certificateFile: String?, keyFile: String?, configKey: String? = nil) throws -> HTTPClient {
        make(tlsConfiguration: try TLSSetup.client(caFile: caFile, certificateFile: certificateFile, keyFile: keyFile, configKey: configKey))
    }

    /// A client whose requests name ``ClientTLS/configuration`` (pass `tls` to the caller as
    /// well, so that each request uses the current one after a reload).
    public static func make(tls: ClientTLS) -> HTTPClient {
        make(tlsConfiguration: tls.configuration)
    }

    /// A client with a ready TLS configuration (`nil` for plaintext URLs only).
    public static func make(tlsConfiguration: TLSConfiguration?) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tlsConfiguration,
            timeout: .init(connect: .seconds(3), read: .seconds(10)))
        configuration.httpVersion = .automatic
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
