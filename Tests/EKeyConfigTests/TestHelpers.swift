import EKeyConfig
import Foundation
import XCTest

/// Folder of the test fixtures, found from this file's path.
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

/// The package root (two levels above Tests/EKeyConfigTests).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

/// A gateway section with every required key, for tests that change one thing.
let minimalGateway = """
    gateway:
      tls: none
      issuer: https://issuer.example.com
      jwks: {url: https://127.0.0.1:7443/.well-known/jwks.json}
      routes: [{prefix: /, upstream: "http://127.0.0.1:8080", audience: "https://api.example.com", public_origin: "https://api.example.com"}]
    """

/// An issuer section with every required key and one template.
let minimalIssuer = """
    issuer:
      issuer_url: https://issuer.example.com
      tls: none
      publisher: {url: https://127.0.0.1:7443, ca: pki/ca.crt, cert: pki/issuer-client.crt, key: pki/issuer-client.key}
      templates:
        - {name: t, subjects: ["client:*"], audiences: [a], actions: ["GET:/x"], binds: [DPoP]}
    """

func load(_ yaml: String, environment: [String: String] = [:]) throws -> LoadedConfig {
    try ConfigLoader.load(yaml: yaml, baseDirectory: fixturesDirectory, environment: environment)
}

/// Loads `yaml`, expects it to fail, and returns the errors.
func loadErrors(
    _ yaml: String, environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line
) -> [ConfigError] {
    do {
        _ = try load(yaml, environment: environment)
        XCTFail("expected config errors", file: file, line: line)
        return []
    } catch let error as ConfigErrors {
        return error.errors
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
        return []
    }
}

/// Asserts one error at `path` whose message contains `fragment`.
func assertError(
    _ errors: [ConfigError], at path: String, contains fragment: String, file: StaticString = #filePath,
    line: UInt = #line
) {
    let matching = errors.filter { $0.path == path }
    XCTAssertFalse(matching.isEmpty, "no error at \(path); got:\n\(ConfigErrors(errors))", file: file, line: line)
    XCTAssertTrue(
        matching.contains { $0.message.contains(fragment) },
        "no error at \(path) mentions \"\(fragment)\"; got:\n\(ConfigErrors(errors))", file: file, line: line)
}
