import EKeyTestSupport
import Foundation

/// Runs the built `ekey` binary (from `.build/debug`, or `EKEY_BIN_DIR`) to completion.
enum CLI {
    struct Result: Sendable {
        let status: Int32
        let stdout: String
        let stderr: String
        var all: String { stdout + stderr }
    }

    static var binary: String { ServiceProcess.binaryDirectory.appendingPathComponent("ekey").path }

    @discardableResult
    static func run(_ arguments: [String], input: String = "") throws -> Result {
        let output = try ExternalCommand(binary, arguments).runAllowingFailure(input: Data(input.utf8))
        return Result(status: output.status, stdout: String(decoding: output.stdout, as: UTF8.self), stderr: output.stderr)
    }

    /// A fresh temporary folder.
    static func temporaryDirectory() throws -> String {
        try TemporaryFiles(prefix: "ekey-cli").directory.path
    }

    static func permissions(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
}
