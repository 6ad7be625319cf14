public import Foundation
import Glibc

/// One of E-Key's executables (`ekey-jwks`, `ekey-issuer`, `ekey-gateway`, `ekey`) run as a
/// real child process by a test: output captured to a file, readiness polled over TCP,
/// stopped with a signal and its exit status checked.
public final class ServiceProcess: @unchecked Sendable {
    /// Why the process misbehaved; carries its output for the test log.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let name: String
    private let process = Process()
    private let outputFile: URL

    /// The folder holding the package's built executables (`.build/debug`), found from
    /// this file's location, overridable with `EKEY_BIN_DIR`.
    public static var binaryDirectory: URL {
        if let directory = ProcessInfo.processInfo.environment["EKEY_BIN_DIR"] {
            return URL(fileURLWithPath: directory)
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug")
    }

    /// Starts `executable` from ``binaryDirectory`` with `arguments` and extra `environment`;
    /// with `cpus`, pinned to those CPUs by `taskset` (which runs it in its own process).
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], cpus: String? = nil) throws {
        name = executable
        let binary = Self.binaryDirectory.appendingPathComponent(executable)
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw Failure(description: "\(binary.path) is missing; build it first (`swift build --build-tests` builds every product)")
        }
        outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("ekey-\(executable)-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: outputFile.path, contents: nil) else {
            throw Failure(description: "cannot create the log file \(outputFile.path); check that the temporary directory is writable")
        }
        let handle = try FileHandle(forWritingTo: outputFile)
        if let cpus {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", cpus, binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        var merged = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("EKEY_") || $0.key == "EKEY_LOG_LEVEL" }
        merged.merge(environment) { _, new in new }
        process.environment = merged
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            process.interrupt()
            kill(process.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(at: outputFile)
    }

    /// The process ID.
    public var pid: Int32 { process.processIdentifier }

    /// Whether it is still running.
    public var isRunning: Bool { process.isRunning }

    /// Everything it wrote to stdout and stderr so far.
    public var output: String {
        (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
    }

    /// Whether the output contains `text` within `timeout`: a service writes its log lines in
    /// batches (at the end of an event-loop turn, at most one batch per few milliseconds), so a
    /// line may follow the response it belongs to.
    public func output(contains text: String, within timeout: Duration = .seconds(5)) async -> Bool {
        await output(within: timeout) { $0.contains(text) }.contains(text)
    }

    /// The output once `condition` holds for it, or as it is when `timeout` has passed.
    @discardableResult
    public func output(within timeout: Duration = .seconds(5), until condition: (String) -> Bool) async -> String {
        let deadline = ContinuousClock.now + timeout
        var text = output
        while !condition(text), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            text = output
        }
        return text
    }

    /// Waits until `port` on loopback accepts TCP connections; fails early if the process exits.
    public func waitUntilListening(port: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw Failure(description: "\(name) exited with status \(process.terminationStatus) before listening on \(port):\n\(output)")
            }
            if Self.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(description: "\(name) did not listen on \(port) within \(timeout):\n\(output)")
    }

    /// Sends `signal` (SIGTERM by default).
    public func signal(_ signal: Int32 = SIGTERM) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit and returns its status; SIGKILLs it after `timeout`.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                throw Failure(description: "\(name) did not exit within \(timeout):\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Whether a TCP connection to 127.0.0.1:`port` succeeds right now.
    public static func canConnect(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
