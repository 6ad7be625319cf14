public import EKeyServer
public import EKeyStore
import Foundation
import Hummingbird
import HummingbirdCore
public import Logging
import NIOSSL
public import ServiceLifecycle

/// `ekey-jwks` assembled: the public/internal listener, the admin listener and the
/// retention sweeper, ready to run in one service group.
public struct Publisher: Sendable {
    /// Where and how to listen.
    public typealias Listeners = ServiceListeners

    let routes: PublisherRoutes
    let keys: any PublishedKeyStore
    /// Where it listens.
    public let listeners: Listeners
    let metrics: MetricsRegistry
    let logger: Logger

    /// Creates the publisher.
    public init(
        settings: PublisherRoutes.Settings, keys: any PublishedKeyStore, listeners: Listeners, metrics: MetricsRegistry = .init(), logger: Logger,
        now: @escaping @Sendable () -> Int64 = WallClock.epochSeconds
    ) {
        self.routes = PublisherRoutes(settings: settings, keys: keys, metrics: metrics, logger: logger, now: now)
        self.keys = keys
        self.listeners = listeners
        self.metrics = metrics
        self.logger = logger
    }

    /// The services to run. `onRunning` reports the bound ports (main, admin) once each listens.
    public func services(onRunning: @escaping @Sendable (_ role: String, _ port: Int) async -> Void = { _, _ in }) throws -> [any Service] {
        let requests = InFlightRequests()
        let router = Router(context: EKeyRequestContext.self)
        router.add(middleware: InFlightMiddleware(requests))
        router.add(middleware: RequestMetricsMiddleware(metrics, routes: PublisherRoutes.paths))
        if ServiceTracing.isEnabled {
            router.add(middleware: TracingMiddleware())
        }
        routes.register(on: router)
        let app = InlineHTTPChannel.server(
            InlineHTTPChannel(tls: listeners.tls, serverName: "ekey-jwks", connections: listeners.connections, responder: router.buildResponder(), logger: logger),
            host: listeners.host, port: listeners.port, serverName: "ekey-jwks",
            plaintextWarning: "TLS IS OFF (jwks.tls: none): registrations and key sets travel in clear text; use this for local debugging only",
            logger: logger, onRunning: { port in await onRunning("jwks", port) })
        let keys = self.keys
        let admin = AdminServer.application(
            host: listeners.adminHost, port: listeners.adminPort, metrics: metrics, logger: logger,
            readiness: {
                await keys.isReachable() ? Readiness() : Readiness(problems: ["the key store is unreachable"])
            },
            onServerRunning: { port in await onRunning("admin", port) })
        var services = namedListeners(main: app, admin: admin) + [RetentionSweeper(routes: routes, logger: logger)]
        if let tls = listeners.tls {
            services.append(TLSReloadService([tls], logger: logger))
            metrics.onScrape { tls.expiryExposition(listener: "jwks") }
        }
        services.append(DrainService(requests))
        return services
    }
}

/// Deletes keys whose retention has ended and tombstones past their `forget_after`, once a minute.
struct RetentionSweeper: Service {
    let routes: PublisherRoutes
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let removed = try await routes.keys.purge(publishedBefore: routes.now(), retainSeconds: routes.retainSeconds)
                if removed > 0 {
                    logger.info("expired keys and tombstones removed from the key set", metadata: ["count": .stringConvertible(removed)])
                }
            } catch {
                logger.warning("could not sweep expired keys and tombstones; will retry", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        }
    }
}
