public import EKeyConfig
public import EKeyServer
import EKeyStore
import Foundation
public import Logging

extension Issuer: ServiceAssembly {
    public static let summary = "Run the E-Key issuer: POST /token for mTLS, registered DPoP and token-exchange clients."

    /// Opens the usage store and the mTLS client to the publisher (both closed when the
    /// service ends), then builds the issuer, which registers its signing keys through that
    /// client.
    public static func assemble(_ settings: IssuerConfig, config: StackConfig, logger: Logger, resources: StartupResources) throws -> Issuer {
        let stores = try resources.openStores(config.store, logger: logger)
        let publisherTLS = try ClientTLS(
            caFile: settings.publisher.ca, certificateFile: settings.publisher.cert, keyFile: settings.publisher.key,
            configKey: "issuer.publisher")
        let publisherClient = resources.own(InternalHTTPClient.make(tls: publisherTLS))
        let registrar = KeyRegistrationClient(
            baseURL: settings.publisher.url.absoluteString, client: publisherClient, tls: publisherTLS, logger: logger)
        return try Issuer(
            configuration: settings, store: stores.usage, registrar: registrar,
            listeners: try ServiceListeners(settings),
            publisherTLS: publisherTLS, logger: logger)
    }
}
