public import EKeyConfig
public import EKeyServer
import EKeyStore
public import Logging

extension Publisher: ServiceAssembly {
    public static let summary = "Run the E-Key JWKS publisher: the key set for gateways, key registration for issuers."

    /// Opens the key store (closed when the service ends), then builds the publisher over it.
    public static func assemble(_ settings: JWKSConfig, config: StackConfig, logger: Logger, resources: StartupResources) throws -> Publisher {
        let stores = try resources.openStores(config.store, logger: logger)
        return Publisher(
            settings: .init(
                authorizedIssuers: Set(settings.authorizedIssuers), admins: Set(settings.admins),
                cacheMaxAge: settings.cacheMaxAge, retain: settings.retain),
            keys: StoreBackedKeys(stores: stores),
            listeners: try ServiceListeners(settings),
            logger: logger)
    }
}
