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
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
        let errorData = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = Output(
            status: process.terminationStatus, stdout: outputData,
            stderr: String(decoding: errorData, as: UTF8.self))
        return output
    }
}
