import EKeyConfig
import XCTest

/// `EKEY_<PATH>` variables win over the file (docs/configuration.md).
final class EnvironmentOverrideTests: XCTestCase {
    func testOverridesWinOverTheFile() throws {
        let yaml = minimalGateway + "\n  dpop: {max_age: 5s}\njwks: {tls: none, admins: [x]}"
        let loaded = try load(yaml, environment: [
            "EKEY_GATEWAY_LISTEN": "127.0.0.1:19443",
            "EKEY_GATEWAY_ADMIN_LISTEN": "[::1]:19102",
            "EKEY_GATEWAY_DPOP_MAX_AGE": "2s",
            "EKEY_GATEWAY_DPOP_REQUIRE_ATH": "true",
            "EKEY_GATEWAY_ROUTES_0_UPSTREAM": "h2c://10.1.2.3:8081",
            "EKEY_GATEWAY_TIMEOUTS_FIRST_BYTE": "1m30s",
            "EKEY_STORE_URL": "redis://127.0.0.1:6379/2",
            "EKEY_JWKS_ADMINS": "[\"spiffe://a/admin\", b]",
            "EKEY_CONFIG": "/somewhere/else.yaml",
            "PATH": "/usr/bin",
        ])
        XCTAssertEqual(loaded.warnings.filter { $0.contains("EKEY_") }, [])
        let gateway = try loaded.config.require(GatewayConfig.self)
        XCTAssertEqual(gateway.listen, ListenAddress(host: "127.0.0.1", port: 19443))
        XCTAssertEqual(gateway.adminListen, ListenAddress(host: "::1", port: 19102))
        XCTAssertEqual(gateway.adminListen.description, "[::1]:19102")
        XCTAssertEqual(gateway.dpop.maxAge, .seconds(2))
        XCTAssertTrue(gateway.dpop.requireATH)
        XCTAssertEqual(gateway.routes[0].upstream.absoluteString, "h2c://10.1.2.3:8081")
        XCTAssertEqual(gateway.routes[0].audience, "https://api.example.com")
        XCTAssertEqual(gateway.timeouts.firstByte, .seconds(90))
        XCTAssertEqual(gateway.routes[0].timeouts.firstByte, .seconds(90))
        XCTAssertEqual(loaded.config.store.url, "redis://127.0.0.1:6379/2")
        XCTAssertEqual(loaded.config.store.kind, .redis)
        XCTAssertEqual(loaded.config.store.prefix, "ekey:")
        XCTAssertEqual(try loaded.config.require(JWKSConfig.self).admins, ["spiffe://a/admin", "b"])
    }

    func testOverrideCreatesMissingKeysAndSections() throws {
        let loaded = try load(minimalGateway, environment: [
            "EKEY_GATEWAY_DPOP_NONCE": "true",
            "EKEY_GATEWAY_DPOP_NONCE_SECRET_FILE": "pki/dpop-nonce.key",
            "EKEY_STORE_PREFIX": "staging:",
        ])
        let gateway = try loaded.config.require(GatewayConfig.self)
        XCTAssertTrue(gateway.dpop.nonce)
        XCTAssertEqual(gateway.dpop.nonceSecretFile, "\(fixturesDirectory)/pki/dpop-nonce.key")
        XCTAssertEqual(loaded.config.store.prefix, "staging:")
    }

    func testTLSCanBeSwitchedToNone() throws {
        let yaml = minimalGateway.replacingOccurrences(of: "tls: none", with: "tls: {cert: pki/gateway.crt, key: pki/gateway.key}")
        XCTAssertFalse(try load(yaml).config.require(GatewayConfig.self).tls.isPlaintext)
        XCTAssertTrue(try load(yaml, environment: ["EKEY_GATEWAY_TLS": "none"]).config.require(GatewayConfig.self).tls.isPlaintext)
    }

    func testUnknownVariableIsAWarning() throws {
        let loaded = try load(minimalGateway, environment: ["EKEY_GATEWAY_LISTN": "1.2.3.4:5", "EKEY_": "x", "EKEY_CONFIG": "f"])
        let warnings = loaded.warnings.filter { $0.contains("EKEY_") && !$0.contains("tls") }
        XCTAssertEqual(warnings.count, 2, "\(loaded.warnings)")
        XCTAssertTrue(warnings.contains { $0.hasPrefix("EKEY_GATEWAY_LISTN names no config key") })
        XCTAssertEqual(try loaded.config.require(GatewayConfig.self).listen.description, "0.0.0.0:9443")
    }

    func testBadOverrideValueNamesTheVariable() {
        let errors = loadErrors(minimalGateway, environment: ["EKEY_GATEWAY_DPOP_MAX_AGE": "5x", "EKEY_GATEWAY_LISTEN": "nowhere"])
        assertError(errors, at: "gateway.dpop.max_age", contains: "\"5x\" is not a duration")
        XCTAssertEqual(errors.first { $0.path == "gateway.dpop.max_age" }?.origin, "from EKEY_GATEWAY_DPOP_MAX_AGE")
        assertError(errors, at: "gateway.listen", contains: "\"nowhere\" is not a listen address")
    }

    func testListItemMustExist() {
        let errors = loadErrors(minimalGateway, environment: ["EKEY_GATEWAY_ROUTES_1_UPSTREAM": "http://a"])
        assertError(errors, at: "gateway.routes.1", contains: "gateway.routes has 1 item")
    }

    func testUnknownKeyThroughTheEnvironmentIsReported() {
        let errors = loadErrors(minimalGateway, environment: ["EKEY_GATEWAY_DPOP": "{max_age: 1s, maxage: 2s}"])
        assertError(errors, at: "gateway.dpop.maxage", contains: "unknown key")
    }

    func testQuotedScalarTextStaysText() throws {
        let loaded = try load(minimalGateway, environment: ["EKEY_STORE_PREFIX": "a: b"])
        XCTAssertEqual(loaded.config.store.prefix, "a: b")
    }
}
