public import EKeyConfig
public import EKeyServer
import EKeyStore
public import Logging

extension Gateway: ServiceAssembly {
    public static let summary = "Run the E-Key verifier gateway: checks token, DPoP/mTLS binding, capability and usage, then proxies."

    /// Opens the usage store and the key-set client (both closed when the service ends),
    /// then builds the gateway; without `store.url`, `/readyz` warns that replicas count
    /// uses on their own.
    public static func assemble(_ settings: GatewayConfig, config: StackConfig, logger: Logger, resources: StartupResources) throws -> Gateway {
        let stores = try resources.openStores(config.store, logger: logger)
        let jwksTLS = try settings.jwks.ca.map {
            try ClientTLS(caFile: $0, certificateFile: settings.jwks.cert, keyFile: settings.jwks.key, configKey: "gateway.jwks")
        }
        let jwksClient = resources.own(jwksTLS.map { InternalHTTPClient.make(tls: $0) } ?? InternalHTTPClient.make(tlsConfiguration: nil))
        return try Gateway(
            config: settings, tls: try ServiceStartup.serverTLS(settings.tls, key: "gateway.tls"),
            store: stores.usage, jwksClient: jwksClient, jwksTLS: jwksTLS, logger: logger,
            readinessWarnings: config.store.isExplicit ? [] : [StoreConfig.implicitMemoryWarning])
    }
}
