import EKeyTestSupport
import Foundation

/// The gateway under test as a real `ekey-gateway` process, for inputs that may crash it: a
/// crash (a failed assertion in a debug build, for one) ends that process, not the test
/// runner, and shows as an outcome of the input that caused it. The gateway trusts the
/// harness's publisher for its keys and routes `/` to `upstream`.
final class GatewayProcess: @unchecked Sendable {
    let harness: GatewayHarness
    let publisherPort: Int
    let upstream: String
    let port: Int
    let adminPort: Int
    /// Lines added to the `gateway:` section, indented by two spaces (e.g. `  authorize: {...}`).
    let extraGatewayYAML: String
    private var process: ServiceProcess?
    private var configPath = ""

    init(harness: GatewayHarness, publisherPort: Int, upstream: String, extraGatewayYAML: String = "") throws {
        self.harness = harness
        self.publisherPort = publisherPort
        self.upstream = upstream
        self.extraGatewayYAML = extraGatewayYAML
        port = try FreePort.pick()
        adminPort = try FreePort.pick()
    }

    /// Writes the configuration and starts the process; returns once it listens.
    func start() async throws {
        let files = harness.files
        let upstreamCA = upstream.hasPrefix("https://") ? ", upstream_ca: \(files.path("ca.crt"))" : ""
        configPath = try files.write(
            "gateway-under-test.yaml",
            """
            store: {url: "memory://"}
            gateway:
              listen: 127.0.0.1:\(port)
              admin_listen: 127.0.0.1:\(adminPort)
              tls: \(files.absoluteServerTLSYAML)
              issuer: \(GatewayHarness.issuer)
              jwks: {url: "https://localhost:\(publisherPort)/.well-known/jwks.json", ca: \(files.path("ca.crt"))}
              timeouts: {connect: 1s, first_byte: 3s, idle: 2s}
              routes: [{prefix: /, upstream: "\(upstream)", audience: "\(GatewayHarness.audience)", public_origin: "\(GatewayHarness.audience)"\(upstreamCA)}]
            \(extraGatewayYAML)
            """)
        try await launch()
    }

    private func launch() async throws {
        // Without the backtracer a crashed process is gone at once, instead of holding its
        // port for the seconds a backtrace takes.
        let process = try ServiceProcess(
            "ekey-gateway", ["--config", configPath], environment: ["EKEY_LOG_LEVEL": "info", "SWIFT_BACKTRACE": "enable=no"])
        self.process = process
        try await process.waitUntilListening(port: port)
    }

    /// Runs one input against the gateway (`body` gets its port) and tells whether the
    /// gateway died: `crash` after this input, `earlierCrash` after the previous one (found
    /// when this input could not connect; the input then ran again on a new gateway).
    func exercise<R>(_ body: (Int) async throws -> R) async throws -> (result: R, earlierCrash: String?, crash: String?) {
        var earlierCrash: String?
        let result: R
        do {
            result = try await body(port)
        } catch {
            guard let crash = try await restartIfDead(grace: .seconds(5)) else { throw error }
            earlierCrash = crash
            result = try await body(port)
        }
        return (result, earlierCrash, try await restartIfDead())
    }

    /// `nil` while the process runs (and, with a `grace`, accepts connections or exits
    /// within it); else how it ended, after starting a new one on the same port: its exit
    /// status, the lines of its output that name the failure, and the last request it logged.
    func restartIfDead(grace: Duration = .zero) async throws -> String? {
        guard let process else { return nil }
        if process.isRunning, grace > .zero, !ServiceProcess.canConnect(port: port) {
            let deadline = ContinuousClock.now + grace
            while process.isRunning, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        guard !process.isRunning || (grace > .zero && !ServiceProcess.canConnect(port: port)) else { return nil }
        let status = try? await process.waitForExit(timeout: .seconds(2))
        let lines = process.output.split(separator: "\n")
        let causes = lines.filter { $0.contains("Assertion failed") || $0.contains("Fatal error") || $0.contains("Precondition failed") }
        let lastRequest = lines.last { $0.contains("event=verify") || $0.contains("\"event\":\"verify\"") }.map { " / last logged: \($0.prefix(400))" } ?? ""
        let described = "ekey-gateway died (status \(status.map(String.init) ?? "hung, killed")): "
            + (causes.isEmpty ? lines.suffix(2) : causes.prefix(2)).joined(separator: " / ") + lastRequest
        try await launch()
        return described
    }

    /// Everything the process wrote so far (its log and audit lines).
    var output: String { process?.output ?? "" }

    /// The output once `condition` holds for it (log lines are written in batches, so a
    /// line may follow its response), or as it is after `timeout`.
    func output(within timeout: Duration = .seconds(5), until condition: (String) -> Bool) async -> String {
        await process?.output(within: timeout, until: condition) ?? ""
    }

    func stop() async {
        guard let process else { return }
        process.signal(SIGTERM)
        _ = try? await process.waitForExit(timeout: .seconds(10))
    }
}
