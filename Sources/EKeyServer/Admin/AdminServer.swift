public import Hummingbird
public import Logging
import NIOCore

/// What `/readyz` reports: ready, or the reasons why not.
public struct Readiness: Sendable {
    /// Reasons the service is not ready; empty when ready.
    public var problems: [String]
    /// Warnings that do not stop traffic, shown after the verdict (`warning: ...`).
    public var warnings: [String]

    /// Whether the service can take traffic.
    public var isReady: Bool { problems.isEmpty }

    /// Creates a report.
    public init(problems: [String] = [], warnings: [String] = []) {
        self.problems = problems
        self.warnings = warnings
    }
}

/// The admin listener of every service (docs/spec/README.md): plain HTTP/1.1 with `/metrics`
/// (Prometheus text), `/healthz` (the process is alive) and `/readyz` (200 only when the
/// service's dependencies are usable, else 503 naming them).
public enum AdminServer {
    /// Builds the admin application; run it in the service's group.
    public static func application(
        host: String, port: Int, metrics: MetricsRegistry, logger: Logger,
        readiness: @escaping @Sendable () async -> Readiness,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            let report = await readiness()
            let verdict = report.isReady ? "ready\n" : "not ready: " + report.problems.joined(separator: "; ") + "\n"
            let text = verdict + report.warnings.map { "warning: \($0)\n" }.joined()
            return Response(
                status: report.isReady ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "ekey-admin"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }
}
