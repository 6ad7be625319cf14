public import AsyncHTTPClient
public import EKeyConfig
import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
import Hummingbird
import NIOPosix
import HummingbirdCore
public import Logging
import NIOSSL
public import ServiceLifecycle

/// `ekey-gateway` assembled from its config: the verifying reverse proxy on the main
/// listener (``InlineHTTPChannel``), the admin listener, and the JWKS cache kept fresh in the background.
public struct Gateway: Sendable {
    let config: GatewayConfig
    let tls: ServerTLS?
    /// The key-set client's TLS, reloaded with the listener's.
    let jwksTLS: ClientTLS?
    let store: any UsageStore
    let keys: JWKSCache
    let forwarder: Forwarder
    let responder: GatewayResponder
    /// The main listener: requests answered from the channel pipeline, no per-stream async bridge.
    let listener: InlineHTTPChannel
    /// `gateway.authorize`: the verify-only listener on the same data path, its TLS, and the
    /// decision it shares with the gRPC `Check` service (`grpc_listen`).
    let authorize: (listener: InlineHTTPChannel, tls: ServerTLS?, authorizer: AuthorizeResponder)?
    let metrics: MetricsRegistry
    let logger: Logger
    /// Shown in `/readyz` after the verdict (the in-memory store standing by default).
    let readinessWarnings: [String]

    /// Builds the gateway. Throws, naming the key or file, when the DPoP nonce secret or
    /// TLS material cannot be used. Everything that can fail comes before the forwarder,
    /// whose upstream HTTP clients must be shut down once created (the group's
    /// ``ForwarderShutdown`` does it), so a failed init leaves nothing open.
    public init(
        config: GatewayConfig, tls: ServerTLS?, store: any UsageStore, jwksClient: HTTPClient, jwksTLS: ClientTLS? = nil,
        metrics: MetricsRegistry = .init(),
        logger: Logger, jwksPolicy: JWKSCache.Policy = .init(), now: @escaping @Sendable () -> Int64 = WallClock.epochMilliseconds,
        readinessWarnings: [String] = [], jwksClock: any Clock<Duration> = ContinuousClock()
    ) throws {
        self.readinessWarnings = readinessWarnings
        self.config = config
        self.tls = tls
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.jwksTLS = jwksTLS
        keys = JWKSCache(
            url: config.jwks.url.absoluteString, client: jwksClient, tls: jwksTLS, policy: jwksPolicy, metrics: metrics, logger: logger, clock: jwksClock)
        let nonces = config.dpop.nonce ? try Self.nonceSource(config.dpop) : nil
        let routes = config.routes.map(Route.init)
        forwarder = try Forwarder(routes: routes, logger: logger)
        let maximumAge = config.dpop.maxAge
        let proofs = DPoPProofVerifier(policy: .init(maximumAge: maximumAge, requireAccessTokenHash: config.dpop.requireATH, serverNonces: nonces))
        // A proof is accepted from max_age before its iat second to max_age after it ends;
        // its jti is remembered at least that long, plus the clock skew.
        let proofWindow = maximumAge * 2 + .seconds(1) + config.clockSkew
        let verifier = RequestVerifier(
            routes: RouteTable(routes),
            tokens: TokenVerification(keys: keys, issuer: config.issuer, clockSkew: config.clockSkew),
            binding: BindingVerification(proofs: proofs),
            usage: UsageAccounting(store: store, proofWindow: proofWindow, clockSkew: config.clockSkew, metrics: metrics))
        let responder = GatewayResponder(verifier: verifier, forwarder: forwarder, metrics: metrics, logger: logger, now: now)
        self.responder = responder
        listener = InlineHTTPChannel(tls: tls, serverName: "ekey-gateway", connections: config.connections, handler: responder.answer(_:origin:))
        authorize = try config.authorize.map { settings -> (listener: InlineHTTPChannel, tls: ServerTLS?, authorizer: AuthorizeResponder) in
            let authorizer = AuthorizeResponder(gateway: responder, trustedClients: settings.trustedClients, pathPrefix: settings.pathPrefix)
            let authorizeTLS = try ServiceStartup.serverTLS(settings.tls, key: "gateway.authorize.tls")
            authorizer.gateway.metrics.increment(AuthorizeResponder.untrustedCounter, by: 0)
            let listener = InlineHTTPChannel(tls: authorizeTLS, serverName: "ekey-gateway", handler: authorizer.answer(_:origin:))
            return (listener: listener, tls: authorizeTLS, authorizer: authorizer)
        }
    }

    /// Reads `gateway.dpop.nonce_secret_file`: at least 32 bytes, used as read, one
    /// trailing newline dropped.
    static func nonceSource(_ dpop: DPoPConfig) throws -> DPoPNonceSource {
        guard let path = dpop.nonceSecretFile else {
            throw GatewaySetupError(description: "gateway.dpop.nonce is true but gateway.dpop.nonce_secret_file is not set; point it at a file of at least 32 random bytes")
        }
        guard var secret = FileManager.default.contents(atPath: path).map(Array.init) else {
            throw GatewaySetupError(description: "gateway.dpop.nonce_secret_file: cannot read \(path); check the path and permissions")
        }
        if secret.last == UInt8(ascii: "\n") { secret.removeLast() }
        do {
            return try DPoPNonceSource(secret: secret, window: dpop.nonceWindow)
        } catch {
            throw GatewaySetupError(description: "gateway.dpop.nonce_secret_file: \(path) is refused: \(error.reason) (write at least 32 random bytes, e.g. `openssl rand -out \(path) 48`)")
        }
    }

    /// Where it listens: `gateway.listen` with `gateway.tls`, and `gateway.admin_listen`.
    public var listeners: ServiceListeners {
        ServiceListeners(
            host: config.listen.host, port: config.listen.port, tls: tls, adminHost: config.adminListen.host, adminPort: config.adminListen.port,
            connections: config.connections)
    }

    /// The services to run; `onRunning` reports the bound ports (`gateway`, `admin`).
    public func services(onRunning: @escaping @Sendable (_ role: String, _ port: Int) async -> Void = { _, _ in }) -> [any Service] {
        let listeners = self.listeners
        let server = InlineHTTPChannel.server(
            listener, host: listeners.host, port: listeners.port, serverName: "ekey-gateway",
            plaintextWarning: "TLS IS OFF (gateway.tls: none): tokens and proofs travel in clear text and mTLS binding is impossible; use this for local debugging only",
            logger: logger, onRunning: { port in await onRunning("gateway", port) })
        let keys = self.keys
        let store = self.store
        let jwksURL = config.jwks.url.absoluteString
        let readinessWarnings = self.readinessWarnings
        let admin = AdminServer.application(
            host: listeners.adminHost, port: listeners.adminPort, metrics: metrics, logger: logger,
            readiness: {
                var problems: [String] = []
                if !(await keys.hasKeys) {
                    problems.append("no signing keys from the publisher at \(jwksURL) (gateway.jwks.url) yet (\(await keys.lastRefreshError ?? "not fetched"))")
                }
                if (try? await store.ping()) == nil { problems.append("the usage store is unreachable") }
                return Readiness(problems: problems, warnings: readinessWarnings)
            },
            onServerRunning: { port in await onRunning("admin", port) })
        var services: [any Service] = [keys, ForwarderShutdown(forwarder: forwarder)] + namedListeners(main: server, admin: admin)
        var reloadable: [any ReloadableTLS] = []
        if let tls { reloadable.append(tls) }
        if let authorize, let settings = config.authorize {
            let authorizeServer = Server(
                childChannelSetup: authorize.listener,
                configuration: .init(address: .hostname(settings.listen.host, port: settings.listen.port), serverName: "ekey-gateway"),
                onServerRunning: { channel in await onRunning("authorize", channel.localAddress?.port ?? 0) },
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: logger)
            services.append(NamedListener(authorizeServer, key: "gateway.authorize.listen", host: settings.listen.host, port: settings.listen.port))
            if let authorizeTLS = authorize.tls {
                reloadable.append(authorizeTLS)
                metrics.onScrape { authorizeTLS.expiryExposition(listener: "authorize") }
            } else {
                logger.warning("gateway.authorize.tls is none: the authorize listener on \(settings.listen) is plaintext (loopback only); tokens and proofs cross it in clear text")
            }
            if let grpcListen = settings.grpcListen {
                let check = EnvoyCheckServer(
                    service: EnvoyCheckService(authorizer: authorize.authorizer), address: grpcListen, tls: settings.tls.files, logger: logger,
                    onRunning: { port in await onRunning("authorize_grpc", port) })
                services.append(NamedListener(check, key: "gateway.authorize.grpc_listen", host: grpcListen.host, port: grpcListen.port))
                if let files = settings.tls.files {
                    logger.notice(
                        "gateway.authorize.grpc_listen \(grpcListen): grpc-swift's transport treats client_auth: optional as required (client_auth is \(files.clientAuth.rawValue)) and reads the certificate files once; restart the gateway to rotate them")
                } else {
                    logger.warning("gateway.authorize.tls is none: the gRPC Check service on \(grpcListen) is plaintext (loopback only); tokens and proofs cross it in clear text")
                }
            }
        }
        if let jwksTLS { reloadable.append(jwksTLS) }
        if !reloadable.isEmpty {
            services.append(TLSReloadService(reloadable, logger: logger))
        }
        if let tls {
            metrics.onScrape { tls.expiryExposition(listener: "gateway") }
        }
        services.append(DrainService(responder.inFlight))
        return services
    }
}

/// Why the gateway cannot start; the message names the key or file and the fix.
public struct GatewaySetupError: Error, CustomStringConvertible {
    public let description: String
}

/// Closes upstream connections when the service group shuts down.
struct ForwarderShutdown: Service {
    let forwarder: Forwarder

    func run() async throws {
        try? await gracefulShutdown()
        await forwarder.shutdown()
    }
}
