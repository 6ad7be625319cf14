import EKeyConfig
import XCTest

/// Unknown keys, bad values and the cross-field rules each stop loading with the key's path.
final class ValidationTests: XCTestCase {
    func testUnknownKeysAtEveryDepth() {
        let yaml = """
            stores: {}
            gateway:
              listen: 0.0.0.0:9443
              lisen: 0.0.0.0:9443
              tls: {cert: a, key: b, clientca: c}
              issuer: https://issuer.example.com
              jwks: {url: https://127.0.0.1:7443/.well-known/jwks.json}
              routes:
                - {prefix: /, upstrem: "http://127.0.0.1:8080", upstream: "http://127.0.0.1:8080", audience: a, public_origin: "https://x"}
                - {prefix: /b, upstream: "http://127.0.0.1:8080", audience: a, public_origin: "https://x", timeouts: {conect: 1s}}
            """
        let errors = loadErrors(yaml)
        assertError(errors, at: "stores", contains: "unknown key 'stores' (valid: store, issuer, gateway, jwks, tracing)")
        assertError(errors, at: "gateway.lisen", contains: "valid: listen, admin_listen, tls, connections, issuer, jwks, clock_skew, dpop, timeouts, routes")
        let tls = errors.first { $0.path == "gateway.tls.clientca" }
        XCTAssertEqual(
            tls?.message,
            "unknown key 'gateway.tls.clientca' (valid: cert, key, client_ca, client_auth, min_version); fix the spelling or remove it")
        XCTAssertEqual(tls?.origin, "line 5")
        assertError(errors, at: "gateway.routes.0.upstrem", contains: "valid: prefix, upstream, audience, public_origin, upstream_ca, timeouts")
        assertError(errors, at: "gateway.routes.1.timeouts.conect", contains: "valid: connect, first_byte, idle")
        XCTAssertEqual(errors.count, 5, "\(ConfigErrors(errors))")
    }

    func testUnknownKeyInATemplate() {
        let yaml = minimalIssuer.replacingOccurrences(of: "binds: [DPoP]", with: "binds: [DPoP], ttl: 30")
        assertError(loadErrors(yaml), at: "issuer.templates.0.ttl", contains: "max_ttl")
    }

    func testBadDurationMessage() {
        let yaml = minimalGateway + "\n  dpop: {max_age: 5x}"
        let errors = loadErrors(yaml)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(
            errors.first.map { ConfigError(path: $0.path, message: $0.message).description },
            "config error at gateway.dpop.max_age: \"5x\" is not a duration (use 500ms, 5s, 2m, 24h or 1h30m)")
        XCTAssertEqual(errors.first?.origin, "line 6")
    }

    func testBadValues() {
        let yaml = """
            store: {url: "mysql://db"}
            gateway:
              listen: 0.0.0.0:70000
              admin_listen: localhost
              tls: {cert: a, key: b, client_ca: c, client_auth: sometimes, min_version: "1.1"}
              issuer: not a url
              jwks: {url: "ftp://keys"}
              clock_skew: soon
              dpop: {require_ath: maybe}
              timeouts: {idle: 0s}
              routes:
                - {prefix: api, upstream: "ftp://127.0.0.1", audience: a, public_origin: "https://x/path"}
            issuer:
              issuer_url: https://issuer.example.com/
              tls: maybe
              signing: {alg: RS256, rotate_every: 1d}
              publisher: {url: http://127.0.0.1:7443, ca: a, cert: b, key: c}
              clients: [{id: bot, jkt: short}]
              idps: [{name: x, issuer: y, audience: z}]
              templates:
                - {name: t, subjects: [""], audiences: [a], actions: ["get /x"], binds: [bearer], max_limit: 0, max_ttl: 61, rate_per_minute: 0}
            """
        let errors = loadErrors(yaml)
        assertError(errors, at: "store.url", contains: "scheme \"mysql\"; use memory://")
        assertError(errors, at: "gateway.listen", contains: "\"0.0.0.0:70000\" is not a listen address")
        assertError(errors, at: "gateway.admin_listen", contains: "host:port")
        assertError(errors, at: "gateway.tls.client_auth", contains: "\"sometimes\" is not one of none, optional, required")
        assertError(errors, at: "gateway.tls.min_version", contains: "use \"1.3\" or \"1.2\"")
        assertError(errors, at: "gateway.issuer", contains: "not an absolute URL")
        assertError(errors, at: "gateway.jwks.url", contains: "has scheme ftp")
        assertError(errors, at: "gateway.clock_skew", contains: "\"soon\" is not a duration")
        assertError(errors, at: "gateway.dpop.require_ath", contains: "\"maybe\" is not a boolean (use true or false)")
        assertError(errors, at: "gateway.timeouts.idle", contains: "longer than 0s")
        assertError(errors, at: "gateway.routes.0.prefix", contains: "must start with /")
        assertError(errors, at: "gateway.routes.0.upstream", contains: "use http:// or https:// or h2c://")
        assertError(errors, at: "gateway.routes.0.public_origin", contains: "without a path")
        assertError(errors, at: "issuer.issuer_url", contains: "ends with /")
        assertError(errors, at: "issuer.tls", contains: "use none")
        assertError(errors, at: "issuer.signing.alg", contains: "\"RS256\" is not one of ES256, EdDSA")
        assertError(errors, at: "issuer.signing.rotate_every", contains: "\"1d\" is not a duration")
        assertError(errors, at: "issuer.publisher.url", contains: "use https://")
        assertError(errors, at: "issuer.clients.0.jkt", contains: "43 base64url characters")
        assertError(errors, at: "issuer.idps.0", contains: "needs jwks_uri")
        assertError(errors, at: "issuer.templates.0.subjects.0", contains: "must not be empty")
        assertError(errors, at: "issuer.templates.0.actions.0", contains: "METHOD:/path")
        assertError(errors, at: "issuer.templates.0.binds.0", contains: "use DPoP or mTLS")
        assertError(errors, at: "issuer.templates.0.max_limit", contains: "from 1 to")
        assertError(errors, at: "issuer.templates.0.max_ttl", contains: "at most 60 seconds")
        assertError(errors, at: "issuer.templates.0.rate_per_minute", contains: "at least 1")
    }

    func testCrossFieldRules() {
        let yaml = """
            gateway:
              tls: {cert: a, key: b, client_auth: required}
              issuer: https://issuer.example.com
              jwks: {url: https://127.0.0.1:7443/.well-known/jwks.json, cert: c}
              dpop: {nonce: true}
              routes: []
            issuer:
              issuer_url: https://issuer.example.com
              tls: none
              publisher: {url: https://127.0.0.1:7443}
              idps: [{name: x, issuer: y, audience: z, jwks_uri: "https://a", jwks_file: b}]
              templates:
                - {name: t, subjects: [], audiences: [a], actions: ["GET:/"], binds: []}
                - {name: t, subjects: [a], audiences: [a], actions: ["GET:/"]}
            jwks:
              listen: "[::1]:0"
            """
        let errors = loadErrors(yaml)
        assertError(errors, at: "gateway.tls.client_auth", contains: "needs client_ca")
        assertError(errors, at: "gateway.jwks", contains: "cert and key go together")
        assertError(errors, at: "gateway.dpop.nonce", contains: "needs nonce_secret_file")
        assertError(errors, at: "gateway.routes", contains: "at least one route")
        assertError(errors, at: "issuer.publisher.ca", contains: "is required")
        assertError(errors, at: "issuer.publisher.key", contains: "is required")
        assertError(errors, at: "issuer.idps.0", contains: "not both")
        assertError(errors, at: "issuer.templates.0.subjects", contains: "must not be empty")
        assertError(errors, at: "issuer.templates.0.binds", contains: "must not be empty")
        assertError(errors, at: "issuer.templates.1.binds", contains: "is required")
        assertError(errors, at: "issuer.templates.1.name", contains: "must be unique")
        assertError(errors, at: "jwks.listen", contains: "port from 1 to 65535")
        assertError(errors, at: "jwks.tls", contains: "is required")
    }

    func testRequiredKeys() {
        let errors = loadErrors("gateway: {}\nissuer: {}")
        for path in ["gateway.tls", "gateway.issuer", "gateway.jwks", "gateway.routes", "issuer.issuer_url", "issuer.tls", "issuer.publisher"] {
            assertError(errors, at: path, contains: "is required")
        }
    }

    func testWrongShapes() {
        let yaml = """
            gateway:
              listen: {host: a}
              tls: none
              issuer: https://issuer.example.com
              jwks: https://127.0.0.1:7443/.well-known/jwks.json
              routes: {prefix: /}
            jwks: {tls: none, admins: admin}
            """
        let errors = loadErrors(yaml)
        assertError(errors, at: "gateway.listen", contains: "expected a single value, found a map")
        assertError(errors, at: "gateway.jwks", contains: "expected a map of keys (url, ca, cert, key)")
        assertError(errors, at: "gateway.routes", contains: "expected a list of maps")
        assertError(errors, at: "jwks.admins", contains: "expected a list such as [a, b]")
        XCTAssertEqual(errors.count, 4, "each problem once:\n\(ConfigErrors(errors))")
    }

    func testMultipleErrorsAreReportedTogether() {
        let yaml = """
            store: {url: "mysql://db"}
            gateway:
              listen: 0.0.0.0:99999
              tls: none
              issuer: https://issuer.example.com
              jwks: {url: https://127.0.0.1:7443/.well-known/jwks.json}
              dpop: {max_age: 5x}
              routes: [{prefix: /, upstream: "http://127.0.0.1:8080", audience: a, public_origin: "https://x"}]
            """
        do {
            _ = try load(yaml)
            XCTFail("expected errors")
        } catch let error as ConfigErrors {
            XCTAssertEqual(error.errors.map(\.path), ["store.url", "gateway.listen", "gateway.dpop.max_age"])
            let text = error.description
            XCTAssertTrue(text.hasPrefix("3 config errors:\n  config error at store.url: "), text)
            XCTAssertTrue(text.contains("\n  config error at gateway.listen: \"0.0.0.0:99999\" is not a listen address"), text)
            XCTAssertTrue(text.contains("(line 3)"), text)
        } catch {
            XCTFail("unexpected \(error)")
        }
    }

    /// Every scheme the store module parses (EKeyStore.StoreURL) loads, with its kind.
    func testStoreURLSchemesOfTheStoreModuleLoad() throws {
        let urls: [(String, String)] = [
            ("memory://", "memory"), ("redis://r:6379", "redis"), ("rediss://r:6380", "rediss"),
            ("redis-cluster://r1:6379,r2:6379", "redis-cluster"),
            ("rediss-cluster://r1:6380,r2:6380?ca=/etc/ekey/redis-ca/ca.crt", "rediss-cluster"),
        ]
        for (url, kind) in urls {
            let store = try load("store: {url: \"\(url)\"}").config.store
            XCTAssertEqual(store.url, url)
            XCTAssertEqual(store.kind.rawValue, kind, url)
        }
    }

    func testStoreURLPasswordIsNotEchoed() {
        let errors = loadErrors("store: {url: \"mysql://user:secret@db\"}")
        XCTAssertFalse(errors.description.contains("secret"))
    }
}

extension ValidationTests {
    func testListIndexesSurviveAWrongShapedItem() {
        let yaml = minimalGateway.replacingOccurrences(
            of: "routes: [{prefix: /,", with: "routes: [oops, {prefix: api,")
        let errors = loadErrors(yaml)
        assertError(errors, at: "gateway.routes.0", contains: "expected a map")
        assertError(errors, at: "gateway.routes.1.prefix", contains: "must start with /")
        XCTAssertEqual(errors.count, 2, "\(ConfigErrors(errors))")
    }
}
