import ArgumentParser
import EKeyConfig
import EKeyGateway
import EKeyServer
import Logging
import EKeyStore
import AsyncHTTPClient
import NIOPosix

/// Entry point of `ekey-gateway`: the E-Key verifier gateway (docs/spec/gateway.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-gateway",
        abstract: "Run the E-Key verifier gateway: checks token, DPoP/mTLS binding, capability and usage, then proxies.",
        discussion: "Reads the `store` and `gateway` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(service: "ekey-gateway", configFlag: config) { loaded, logger, resources in
            let settings = try loaded.config.requireGateway()
            let tracing = try ServiceTracing.start(loaded.config.tracing, service: "ekey-gateway", logger: logger)
            let stores = resources.own(
                try Stores.make(
                    url: loaded.config.store.url, prefix: loaded.config.store.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                    logger: logger))
            let jwksTLS = try settings.jwks.ca.map {
                try ClientTLS(caFile: $0, certificateFile: settings.jwks.cert, keyFile: settings.jwks.key, configKey: "gateway.jwks")
            }
            let jwksClient = resources.own(
                jwksTLS.map { InternalHTTPClient.make(tls: $0) } ?? InternalHTTPClient.make(tlsConfiguration: nil))
            let gateway = try Gateway(
                config: settings, tls: try ServiceStartup.serverTLS(settings.tls, key: "gateway.tls"),
                store: stores.usage, jwksClient: jwksClient, jwksTLS: jwksTLS, logger: logger,
                readinessWarnings: loaded.config.store.isExplicit ? [] : [StoreConfig.implicitMemoryWarning])
            let services = gateway.services { role, port in
                logger.info("listening", metadata: ["listener": .string(role), "port": .stringConvertible(port)])
            }
            // The exporter first: the group stops services in reverse order, so it flushes last.
            try await ServiceRunner.run((tracing.map { [$0] } ?? []) + services, logger: logger)
        }
    }
}
