import EKeyTestSupport
import Foundation
import XCTest

/// `ekey config check` run as a process on a good and a bad file.
final class ConfigCheckCommandTests: XCTestCase {
    private func ekeyBinary() throws -> String {
        let path = "\(packageRoot)/.build/debug/ekey"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("\(path) is not built; run `swift build --product ekey` first")
        }
        return path
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ekeyBinary())
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin", "EKEY_GATEWAY_LISTN": "x"]
        let result = try ExternalCommand.capture(process)
        return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
    }

    func testGoodFile() throws {
        let file = "\(fixturesDirectory)/stack.yaml"
        let result = try run(["config", "check", file])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("OK: \(file) (sections: store, issuer, gateway, jwks)\n"), result.stdout)
        XCTAssertTrue(result.stdout.contains("warning: EKEY_GATEWAY_LISTN names no config key"), result.stdout)

        let alone = try run(["config", "check", "--ignore-environment", file])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        XCTAssertFalse(alone.stdout.contains("warning:"), alone.stdout)
    }

    func testBadFile() throws {
        let result = try run(["config", "check", "\(fixturesDirectory)/bad.yaml"])
        XCTAssertEqual(result.status, 1)
        XCTAssertFalse(result.stdout.contains("OK"), result.stdout)
        XCTAssertTrue(result.stderr.contains("3 config errors:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("config error at store.url:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("config error at gateway.listen: \"0.0.0.0:99999\" is not a listen address"), result.stderr)
        XCTAssertTrue(
            result.stderr.contains(
                "config error at gateway.dpop.max_age: \"5x\" is not a duration (use 500ms, 5s, 2m, 24h or 1h30m) (line 9)"),
            result.stderr)
    }

    func testMissingFileArgument() throws {
        let result = try run(["config", "check"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("pass --config FILE or set EKEY_CONFIG"), result.stderr)
    }
}
