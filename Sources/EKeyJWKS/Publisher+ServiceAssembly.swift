public import EKeyConfig
public import EKeyServer
import EKeyStore
public import Logging
import NIOPosix

extension Publisher: ServiceAssembly {
    public static let section = "jwks"

    public static func settings(from config: StackConfig) throws -> JWKSConfig {
        try config.requireJWKS()
    }

    /// Opens the key store (closed when the service ends), then builds the publisher over it.
    public static func assemble(_ settings: JWKSConfig, config: StackConfig, logger: Logger, resources: StartupResources) throws -> Publisher {
        let stores = resources.own(
            try Stores.make(url: config.store.url, prefix: config.store.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger))
        return Publisher(
            settings: .init(
                authorizedIssuers: Set(settings.authorizedIssuers), admins: Set(settings.admins),
                cacheMaxAge: settings.cacheMaxAge, retain: settings.retain),
            keys: StoreBackedKeys(stores: stores),
            listeners: .init(
                host: settings.listen.host, port: settings.listen.port,
                tls: try ServiceStartup.serverTLS(settings.tls, key: "jwks.tls"),
                adminHost: settings.adminListen.host, adminPort: settings.adminListen.port),
            logger: logger)
    }
}
