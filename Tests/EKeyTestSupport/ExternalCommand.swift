public import Foundation

/// Runs an external program (python3, openssl, redis-cli ...) for tests, with stdin and
/// captured output. A non-zero exit throws with the program's stderr, so a missing tool
/// or library fails the test with a readable message instead of being skipped.
public struct ExternalCommand: Sendable {
    /// The program's result.
    public struct Output: Sendable {
        public let status: Int32
        public let stdout: Data
        public let stderr: String
    }

    /// Why the command failed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let executable: String
    public let arguments: [String]

    /// Creates a command; `executable` is looked up on `PATH` through `/usr/bin/env`.
    public init(_ executable: String, _ arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }

    /// A Python command: the interpreter `make test` prepares (`EKEY_PYTHON`, a virtual
    /// environment with joserfc and the other interop libraries), else `python3`.
    public static func python(_ arguments: [String]) -> ExternalCommand {
        ExternalCommand(ProcessInfo.processInfo.environment["EKEY_PYTHON"] ?? "python3", arguments)
    }

    /// Runs to completion, feeding `input` on stdin; a non-zero exit throws.
    @discardableResult
    public func run(input: Data = Data()) throws -> Output {
        let output = try runAllowingFailure(input: input)
        guard output.status == 0 else {
            throw Failure(
                description: "\(executable) \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)")
        }
        return output
    }

    /// Runs to completion, feeding `input` on stdin, and returns whatever the exit status.
    public func runAllowingFailure(input: Data = Data()) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let result = try Self.capture(process, input: input)
        return Output(status: result.status, stdout: result.stdout, stderr: String(decoding: result.stderr, as: UTF8.self))
    }

    /// Runs `process` to completion with stdin, stdout and stderr in temporary files, not
    /// pipes. Tests run in parallel: a pipe end this process holds can be inherited by a
    /// long-lived server another test starts at the same moment, and a read to end of file
    /// (or a child reading stdin to its end) would then wait forever, holding one of the
    /// two cooperative threads of a 2-core machine, which stalls every test.
    public static func capture(_ process: Process, input: Data = Data()) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ekey-command-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputURL = directory.appendingPathComponent("stdin")
        let outputURL = directory.appendingPathComponent("stdout")
        let errorURL = directory.appendingPathComponent("stderr")
        try input.write(to: inputURL)
        try Data().write(to: outputURL)
        try Data().write(to: errorURL)
        let stdin = try FileHandle(forReadingFrom: inputURL)
        let stdout = try FileHandle(forWritingTo: outputURL)
        let stderr = try FileHandle(forWritingTo: errorURL)
        defer {
            try? stdin.close()
            try? stdout.close()
            try? stderr.close()
        }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try Data(contentsOf: outputURL), try Data(contentsOf: errorURL))
    }
}
