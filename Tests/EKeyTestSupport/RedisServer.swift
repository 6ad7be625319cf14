public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` on a free loopback port, in its own temporary folder, for tests.
///
/// Stop it with `stop()` (SIGTERM), `kill()` (SIGKILL) or `pause()` (SIGSTOP), bring it
/// back on the same port with `start()` or `resume()`; `shutdown()` ends it and removes
/// the folder (call it from `tearDown`, so a failing test cleans up too).
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    public let arguments: [String]
    /// The password given with `--requirepass`, used by `cli`.
    public let password: String?
    /// With TLS: the CA file (PEM) that signed the server's certificate for `localhost`
    /// and 127.0.0.1; the server then listens with TLS only.
    public let caFile: String?
    private var process: Process?
    private let lock = NSLock()

    /// Starts a server; `arguments` are added to the command line (e.g. `--requirepass x`).
    public init(arguments: [String] = [], password: String? = nil, port: Int? = nil, tls: Bool = false) throws {
        self.port = try port ?? RedisServer.freePort()
        self.password = password
        if tls {
            // The development PKI: a CA and a server certificate for localhost and 127.0.0.1.
            let folder = try TemporaryFiles.withDevelopmentPKI(prefix: "ekey-redis").files
            self.directory = folder.directory
            self.caFile = folder.path("ca.crt")
            self.arguments =
                [
                    "--tls-port", String(self.port), "--tls-cert-file", folder.path("server.crt"), "--tls-key-file", folder.path("server.key"),
                    "--tls-ca-cert-file", folder.path("ca.crt"), "--tls-auth-clients", "no",
                ] + arguments
        } else {
            self.directory = try TemporaryFiles(prefix: "ekey-redis").directory
            self.caFile = nil
            self.arguments = arguments
        }
        do {
            try self.start()
        } catch {
            self.shutdown()
            throw error
        }
    }

    deinit {
        self.shutdown()
    }

    public var url: String { "redis://127.0.0.1:\(self.port)" }

    /// Starts the server (again) on its port and waits until it answers PING.
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "redis-server", "--port", self.caFile == nil ? String(self.port) : "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory.path, "--logfile", self.directory.appendingPathComponent("redis-\(self.port).log").path,
            ] + self.arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.lock.withLock { self.process = process }
        try self.waitUntilReady()
    }

    /// Polls PING until the server answers (a NOAUTH answer also means it is up).
    public func waitUntilReady(timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let reply = try? self.cli(["PING"]), reply.contains("PONG") || reply.contains("NOAUTH") { return }
            if let process = self.lock.withLock({ self.process }), !process.isRunning {
                let log = (try? String(contentsOf: self.directory.appendingPathComponent("redis-\(self.port).log"), encoding: .utf8)) ?? ""
                throw ExternalCommand.Failure(description: "redis-server on port \(self.port) exited: \(log.suffix(2000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ExternalCommand.Failure(description: "redis-server on port \(self.port) did not answer PING within \(timeout) s")
    }

    /// Runs `redis-cli` against this server and returns its output (error replies included).
    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        var command = ["redis-cli", "-h", "127.0.0.1", "-p", String(self.port)]
        if let caFile = self.caFile { command += ["--tls", "--cacert", caFile] }
        if let password = self.password { command += ["--no-auth-warning", "-a", password] }
        return try RedisServer.run(command + arguments)
    }

    /// Asks the server to shut down (`SHUTDOWN NOSAVE`), and waits for the process to end;
    /// SIGKILL if it has not ended in time. A signal alone is not enough: a test process
    /// whose service groups ignore SIGTERM passes that disposition on to its children.
    public func stop() {
        _ = try? self.cli(["SHUTDOWN", "NOSAVE"])
        self.signal(SIGKILL)
    }

    /// SIGKILL, and waits for the process to end.
    public func kill() {
        self.signal(SIGKILL)
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    public func pause() {
        if let process = self.lock.withLock({ self.process }), process.isRunning { Glibc.kill(process.processIdentifier, SIGSTOP) }
    }

    /// SIGCONT after `pause()`.
    public func resume() {
        if let process = self.lock.withLock({ self.process }), process.isRunning { Glibc.kill(process.processIdentifier, SIGCONT) }
    }

    /// Ends the server and removes its folder.
    public func shutdown() {
        self.resume()
        self.kill()
        try? FileManager.default.removeItem(at: self.directory)
    }

    private func signal(_ signal: Int32) {
        guard let process = self.lock.withLock({ () -> Process? in
            let current = self.process
            self.process = nil
            return current
        }) else { return }
        // Signal by pid whatever `isRunning` says: Foundation's view of a restarted
        // child can lag behind, and a server must never outlive its test.
        Glibc.kill(process.processIdentifier, SIGCONT)
        Glibc.kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    /// A free loopback port below 55000: Redis Cluster also listens on port + 10000.
    public static func freePort() throws -> Int {
        try FreePort.pick(below: 55000)
    }

    /// Runs a program and returns its stdout; throws when it exits non-zero.
    @discardableResult
    public static func run(_ command: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let result = try ExternalCommand.capture(process)
        let text = String(decoding: result.stdout, as: UTF8.self)
        guard result.status == 0 else {
            throw ExternalCommand.Failure(
                description: "\(command.joined(separator: " ")) exited \(result.status): \(text) \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return text
    }
}
