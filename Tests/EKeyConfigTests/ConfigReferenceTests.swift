@testable import EKeyConfig
import Foundation
import XCTest

/// docs/configuration.md's key tables are what ``ConfigKeys`` declares.
///
/// `make config-docs` (`EKEY_WRITE_CONFIG_DOCS=1 swift test --filter ConfigReferenceTests`)
/// rewrites them; the prose around the tables is left as it is.
final class ConfigReferenceTests: XCTestCase {
    private let documentPath = "\(packageRoot)/docs/configuration.md"

    func testTheDocsTablesAreWhatTheDeclarationsMake() throws {
        let document = try String(contentsOfFile: documentPath, encoding: .utf8)
        let generated = try ConfigReference.rewrite(document)
        if ProcessInfo.processInfo.environment["EKEY_WRITE_CONFIG_DOCS"] == "1" {
            try generated.write(toFile: documentPath, atomically: true, encoding: .utf8)
            return
        }
        let written = document.split(separator: "\n", omittingEmptySubsequences: false)
        let declared = generated.split(separator: "\n", omittingEmptySubsequences: false)
        let line = zip(written, declared).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(written.count, declared.count)
        XCTAssertTrue(
            document == generated,
            """
            docs/configuration.md's key tables differ from Sources/EKeyConfig/ConfigKeys.swift at line \(line + 1); run `make config-docs`
              docs:     \(line < written.count ? written[line] : "(end)")
              declared: \(line < declared.count ? declared[line] : "(end)")
            """)
    }

    func testEveryDeclaredKeyHasARow() throws {
        let tables = ConfigReference.tables.map(\.text).joined()
        for path in ["store.url", "tracing.endpoint", "issuer.templates[].max_ttl", "gateway.routes[].timeouts.idle", "jwks.retain"] {
            XCTAssertTrue(tables.contains("| `\(path)` |"), path)
        }
        XCTAssertTrue(tables.contains("`EKEY_GATEWAY_ROUTES_<i>_TIMEOUTS_IDLE`"))
        XCTAssertTrue(tables.contains("| `gateway.dpop.max_age` | duration > 0 | `5s` | `EKEY_GATEWAY_DPOP_MAX_AGE` |"))
        XCTAssertTrue(tables.contains("| `gateway.routes[].timeouts.connect` | duration > 0 | the gateway's, key by key |"))
        XCTAssertTrue(tables.contains("| `min_version` | `\"1.3\"` or `\"1.2\"` | `\"1.3\"` |"))
    }

    func testAMissingMarkerIsAnError() {
        XCTAssertThrowsError(try ConfigReference.rewrite("# no tables"))
    }
}
