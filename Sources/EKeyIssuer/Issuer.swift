public import EKeyConfig
import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
import NIOSSL
public import ServiceLifecycle

/// `ekey-issuer` assembled (docs/spec/issuer.md): the TLS listener with `POST /token` and the RFC
/// 8414 metadata, the admin listener (ready once a signing key is registered and not
/// revoked, and the store answers), the signing-key maintenance and the IdP key caches,
/// ready to run in one group.
public struct Issuer: Sendable {
    /// Where and how to listen.
    public typealias Listeners = ServiceListeners

    /// The signing keys; read `activeKey()` or `liveKeyIDs` for diagnostics.
    public let keys: SigningKeyManager
    let endpoint: TokenEndpoint
    let metadata: AuthorizationServerMetadata
    let identityProviders: IdentityProviders
    let store: any UsageStore
    /// `issuer.publisher.url`, named in `/readyz` until a key is registered.
    let publisherURL: String
    /// Where it listens.
    public let listeners: Listeners
    /// The publisher client's TLS, reloaded with the listener's.
    let publisherTLS: ClientTLS?
    let metrics: MetricsRegistry
    let logger: Logger

    /// Builds the issuer from its configuration section.
    ///
    /// - Parameters:
    ///   - reRegisterEvery: how often the live signing keys are registered again
    ///     (``SigningKeyManager/Schedule/reRegisterEvery``, 30 s; tests shorten it).
    ///   - keyClock: the clock timing key rotation and re-registration (tests pass their own).
    /// - Throws: ``IssuerSetupError`` for a template, key file or IdP JWKS file that cannot be used.
    public init(
        configuration: IssuerConfig, store: any UsageStore, registrar: any SigningKeyRegistrar, listeners: Listeners,
        publisherTLS: ClientTLS? = nil, metrics: MetricsRegistry = .init(), logger: Logger, reRegisterEvery: Duration = .seconds(30),
        keyClock: any Clock<Duration> = ContinuousClock()
    ) throws(IssuerSetupError) {
        self.publisherTLS = publisherTLS
        let issuerURL = configuration.issuerURL.absoluteString
        let policy = try IssuancePolicy(templates: configuration.templates)
        let algorithm: JWSAlgorithm = configuration.signing.alg == .edDSA ? .edDSA : .es256
        let initialKey: PrivateSigningKey
        var schedule: SigningKeyManager.Schedule
        if let keyFile = configuration.signing.keyFile {
            initialKey = try SigningKeyFile.load(path: keyFile, expected: configuration.signing.isAlgorithmExplicit ? algorithm : nil)
            schedule = .init(rotateEvery: nil)
        } else {
            initialKey = PrivateSigningKey(generating: algorithm)
            schedule = .init(rotateEvery: configuration.signing.rotateEvery)
        }
        schedule.reRegisterEvery = reRegisterEvery
        keys = SigningKeyManager(
            initialKey: initialKey, keyFile: configuration.signing.keyFile, schedule: schedule, registrar: registrar, logger: logger,
            clock: keyClock)
        identityProviders = try IdentityProviders(configuration.idps, logger: logger)
        let authenticator = ClientAuthenticator(
            tokenEndpoint: issuerURL + "/token", clockSkew: configuration.clockSkew, clients: configuration.clients,
            identityProviders: identityProviders, store: store, metrics: metrics)
        endpoint = TokenEndpoint(
            issuerURL: issuerURL, authenticator: authenticator, policy: policy, keys: keys, store: store, metrics: metrics, logger: logger)
        metadata = AuthorizationServerMetadata(issuerURL: issuerURL, jwksURI: configuration.jwksURI.absoluteString)
        self.store = store
        publisherURL = configuration.publisher.url.absoluteString
        self.listeners = listeners
        self.metrics = metrics
        self.logger = logger
    }

    /// The routes of the main listener.
    public func register(on router: Router<EKeyRequestContext>) {
        let endpoint = self.endpoint
        let metadata = self.metadata
        router.post("/token") { request, context in await endpoint.handle(request, context: context) }
        router.get("/.well-known/oauth-authorization-server") { _, _ in
            Response.json(metadata.jsonValue, headers: [.cacheControl: "public, max-age=300"])
        }
    }

    /// The main listener's handler: `POST /token` from a client certificate is decided on
    /// the event loop once its body has arrived, answered there when
    /// ``TokenEndpoint/answerAtOnce(body:peer:proofs:clientAddress:)`` can; everything else
    /// is answered by `routes` in a task.
    func handler(routes: some HTTPResponder<EKeyRequestContext>, requests: InFlightRequests) -> InlineHandler {
        let endpoint = self.endpoint
        let metrics = self.metrics
        let logger = self.logger
        return { head, origin in
            let inTask = InlineAnswer.deferred { request in
                try await routes.respond(to: request, context: EKeyRequestContext(origin: origin, logger: logger))
            }
            guard head.method == .post, head.path == "/token", !ServiceTracing.isEnabled, let peer = origin.peer else { return inTask }
            return .afterBody(upTo: TokenEndpoint.maximumBodySize) { body in
                guard let body, requests.enter() else { return inTask }
                defer { requests.leave() }
                let started = ContinuousClock.now
                guard
                    let answer = endpoint.answerAtOnce(
                        body: body, peer: peer, proofs: head.headerFields[values: .dpop], clientAddress: origin.clientAddress)
                else { return inTask }
                metrics.recordRequest(route: "/token", status: answer.0.status.code, ContinuousClock.now - started)
                return .immediate(answer.0, answer.1)
            }
        }
    }

    /// The services to run. `onRunning` reports the bound ports (`issuer`, `admin`) once each listens.
    public func services(onRunning: @escaping @Sendable (_ role: String, _ port: Int) async -> Void = { _, _ in }) -> [any Service] {
        let requests = InFlightRequests()
        let router = Router(context: EKeyRequestContext.self)
        router.add(middleware: InFlightMiddleware(requests))
        router.add(middleware: RequestMetricsMiddleware(metrics, routes: ["/token", "/.well-known/oauth-authorization-server"]))
        if ServiceTracing.isEnabled {
            router.add(middleware: TracingMiddleware())
        }
        register(on: router)
        let app = InlineHTTPChannel.server(
            InlineHTTPChannel(tls: listeners.tls, serverName: "ekey-issuer", connections: listeners.connections, handler: handler(routes: router.buildResponder(), requests: requests)),
            host: listeners.host, port: listeners.port, serverName: "ekey-issuer",
            plaintextWarning: "TLS IS OFF (issuer.tls: none): no client certificates, tokens travel in clear text; use this for local debugging only",
            logger: logger, onRunning: { port in await onRunning("issuer", port) })
        let keys = self.keys
        let store = self.store
        let metrics = self.metrics
        let publisherURL = self.publisherURL
        let admin = AdminServer.application(
            host: listeners.adminHost, port: listeners.adminPort, metrics: metrics, logger: logger,
            readiness: {
                var problems: [String] = []
                if let unavailability = await keys.unavailability {
                    switch unavailability {
                    case .notRegistered:
                        problems.append("no signing key is registered with the JWKS publisher at \(publisherURL) (issuer.publisher.url) yet; the issuer keeps retrying")
                    default:
                        problems.append(unavailability.readinessProblem)
                    }
                }
                let clock = ContinuousClock()
                let start = clock.now
                do {
                    try await store.ping()
                } catch {
                    problems.append("the store is unreachable")
                }
                metrics.record("ekey_store_seconds", clock.now - start)
                return Readiness(problems: problems)
            },
            onServerRunning: { port in await onRunning("admin", port) })
        var services = namedListeners(main: app, admin: admin) + [keys]
        services += identityProviders.caches.map { $0 as any Service }
        var reloadable: [any ReloadableTLS] = []
        if let tls = listeners.tls {
            reloadable.append(tls)
            metrics.onScrape { tls.expiryExposition(listener: "issuer") }
        }
        if let publisherTLS { reloadable.append(publisherTLS) }
        if !reloadable.isEmpty {
            services.append(TLSReloadService(reloadable, logger: logger))
        }
        services.append(DrainService(requests))
        return services
    }
}
