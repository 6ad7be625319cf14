import ArgumentParser
import EKeyConfig
import EKeyJWKS
import EKeyServer
import EKeyStore
import Logging
import NIOPosix

/// Entry point of `ekey-jwks`: the E-Key JWKS publisher (docs/spec/publisher.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-jwks",
        abstract: "Run the E-Key JWKS publisher: the key set for gateways, key registration for issuers.",
        discussion: "Reads the `store` and `jwks` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(service: "ekey-jwks", configFlag: config) { loaded, logger, resources in
            let settings = try loaded.config.requireJWKS()
            let tracing = try ServiceTracing.start(loaded.config.tracing, service: "ekey-jwks", logger: logger)
            let stores = resources.own(
                try Stores.make(
                    url: loaded.config.store.url, prefix: loaded.config.store.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                    logger: logger))
            let publisher = Publisher(
                settings: .init(
                    authorizedIssuers: Set(settings.authorizedIssuers), admins: Set(settings.admins),
                    cacheMaxAge: settings.cacheMaxAge, retain: settings.retain),
                keys: StoreBackedKeys(stores: stores),
                listeners: .init(
                    host: settings.listen.host, port: settings.listen.port,
                    tls: try ServiceStartup.serverTLS(settings.tls, key: "jwks.tls"),
                    adminHost: settings.adminListen.host, adminPort: settings.adminListen.port),
                logger: logger)
            let services = try publisher.services { role, port in
                logger.info("listening", metadata: ["listener": .string(role), "port": .stringConvertible(port)])
            }
            // The exporter first: the group stops services in reverse order, so it flushes last.
            try await ServiceRunner.run((tracing.map { [$0] } ?? []) + services, logger: logger)
        }
    }
}
