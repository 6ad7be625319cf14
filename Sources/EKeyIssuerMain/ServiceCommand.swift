import ArgumentParser
import AsyncHTTPClient
import EKeyConfig
import EKeyIssuer
import EKeyServer
import EKeyStore
import Foundation
import Logging
import NIOPosix

/// Entry point of `ekey-issuer`: the E-Key issuer (`POST /token`, docs/spec/issuer.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-issuer",
        abstract: "Run the E-Key issuer: POST /token for mTLS, registered DPoP and token-exchange clients.",
        discussion: "Reads the `store` and `issuer` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(service: "ekey-issuer", configFlag: config) { loaded, logger, resources in
            let settings = try loaded.config.requireIssuer()
            let tracing = try ServiceTracing.start(loaded.config.tracing, service: "ekey-issuer", logger: logger)
            let stores = resources.own(
                try Stores.make(
                    url: loaded.config.store.url, prefix: loaded.config.store.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                    logger: logger))
            let publisherTLS = try ClientTLS(
                caFile: settings.publisher.ca, certificateFile: settings.publisher.cert, keyFile: settings.publisher.key,
                configKey: "issuer.publisher")
            let publisherClient = resources.own(InternalHTTPClient.make(tls: publisherTLS))
            let registrar = KeyRegistrationClient(
                baseURL: settings.publisher.url.absoluteString, client: publisherClient, tls: publisherTLS, logger: logger)
            let issuer = try Issuer(
                configuration: settings, store: stores.usage, registrar: registrar,
                listeners: .init(
                    host: settings.listen.host, port: settings.listen.port,
                    tls: try ServiceStartup.serverTLS(settings.tls, key: "issuer.tls"),
                    adminHost: settings.adminListen.host, adminPort: settings.adminListen.port),
                publisherTLS: publisherTLS, logger: logger)
            let services = issuer.services { role, port in
                logger.info("listening", metadata: ["listener": .string(role), "port": .stringConvertible(port)])
            }
            // The exporter first: the group stops services in reverse order, so it flushes last.
            try await ServiceRunner.run((tracing.map { [$0] } ?? []) + services, logger: logger)
        }
    }
}
