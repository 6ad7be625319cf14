import EKeyConfig
import Foundation
import XCTest

/// The docs/configuration.md example file loads into the expected typed values.
final class DesignExampleTests: XCTestCase {
    func testDesignExampleLoads() throws {
        let loaded = try ConfigLoader.load(path: "\(fixturesDirectory)/stack.yaml", environment: [:])
        XCTAssertEqual(loaded.warnings, [])
        XCTAssertEqual(loaded.path, "\(fixturesDirectory)/stack.yaml")
        let config = loaded.config
        XCTAssertEqual(config.sections, ["store", "issuer", "gateway", "jwks"])
        let pki = "\(fixturesDirectory)/pki"

        XCTAssertEqual(config.store, StoreConfig(url: "memory://", kind: .memory, prefix: "ekey:", isExplicit: true))

        let issuer = try config.require(IssuerConfig.self)
        XCTAssertEqual(issuer.listen, ListenAddress(host: "0.0.0.0", port: 8443))
        XCTAssertEqual(issuer.adminListen, ListenAddress(host: "127.0.0.1", port: 9101))
        XCTAssertEqual(issuer.issuerURL.absoluteString, "https://issuer.example.com")
        XCTAssertEqual(issuer.jwksURI.absoluteString, "https://jwks.example.com/.well-known/jwks.json")
        XCTAssertEqual(issuer.clockSkew, .seconds(5))
        XCTAssertEqual(
            issuer.tls,
            .enabled(TLSFiles(
                cert: "\(pki)/issuer.crt", key: "\(pki)/issuer.key", clientCA: "\(pki)/ca.crt", clientAuth: .optional,
                minVersion: .tls13)))
        XCTAssertEqual(issuer.signing.alg, .es256)
        XCTAssertTrue(issuer.signing.isAlgorithmExplicit)
        XCTAssertEqual(issuer.signing.rotateEvery, .seconds(86_400))
        XCTAssertNil(issuer.signing.keyFile)
        XCTAssertEqual(issuer.publisher.url.absoluteString, "https://127.0.0.1:7443")
        XCTAssertEqual(issuer.publisher.ca, "\(pki)/ca.crt")
        XCTAssertEqual(issuer.publisher.cert, "\(pki)/issuer-client.crt")
        XCTAssertEqual(issuer.publisher.key, "\(pki)/issuer-client.key")
        XCTAssertEqual(issuer.clients, [ClientConfig(id: "ci-bot", jkt: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")])
        XCTAssertEqual(issuer.idps.count, 1)
        XCTAssertEqual(issuer.idps[0].name, "github")
        XCTAssertEqual(issuer.idps[0].issuer, "https://token.actions.githubusercontent.com")
        XCTAssertEqual(issuer.idps[0].audience, "https://github.com/acme")
        XCTAssertEqual(issuer.idps[0].jwksURI?.absoluteString, "https://token.actions.githubusercontent.com/.well-known/jwks")
        XCTAssertNil(issuer.idps[0].jwksFile)
        XCTAssertEqual(issuer.idps[0].subjectClaim, "sub")
        XCTAssertEqual(
            issuer.templates,
            [TemplateConfig(
                name: "payments-create", subjects: ["spiffe://example.org/checkout", "client:ci-bot"],
                audiences: ["https://api.example.com"], actions: ["POST:/payments", "GET:/payments/:id"], maxLimit: 1,
                maxTTL: .seconds(30), binds: [.dpop, .mtls], ratePerMinute: 600, delegateSubjects: [])])

        let gateway = try config.require(GatewayConfig.self)
        XCTAssertEqual(gateway.listen, ListenAddress(host: "0.0.0.0", port: 9443))
        XCTAssertEqual(gateway.adminListen, ListenAddress(host: "127.0.0.1", port: 9102))
        XCTAssertEqual(gateway.tls.files?.cert, "\(pki)/gateway.crt")
        XCTAssertEqual(gateway.tls.files?.clientAuth, .optional)
        XCTAssertFalse(gateway.tls.isPlaintext)
        XCTAssertEqual(gateway.issuer, "https://issuer.example.com")
        XCTAssertEqual(
            gateway.jwks,
            JWKSClientConfig(
                url: URL(string: "https://127.0.0.1:7443/.well-known/jwks.json")!, ca: "\(pki)/ca.crt",
                cert: "\(pki)/gateway-client.crt", key: "\(pki)/gateway-client.key"))
        XCTAssertEqual(gateway.clockSkew, .seconds(5))
        XCTAssertEqual(
            gateway.dpop,
            DPoPConfig(
                maxAge: .seconds(5), requireATH: false, nonce: false, nonceWindow: .seconds(60),
                nonceSecretFile: "\(pki)/dpop-nonce.key"))
        XCTAssertEqual(gateway.timeouts, TimeoutsConfig(connect: .seconds(2), firstByte: .seconds(30), idle: .seconds(60)))
        XCTAssertEqual(
            gateway.routes,
            [RouteConfig(
                prefix: "/", upstream: URL(string: "http://127.0.0.1:8080")!, audience: "https://api.example.com",
                publicOrigin: URL(string: "https://api.example.com")!, upstreamCA: nil, timeouts: TimeoutsConfig())])

        let jwks = try config.require(JWKSConfig.self)
        XCTAssertEqual(jwks.listen, ListenAddress(host: "0.0.0.0", port: 7443))
        XCTAssertEqual(jwks.adminListen, ListenAddress(host: "127.0.0.1", port: 9103))
        XCTAssertEqual(jwks.tls.files?.key, "\(pki)/jwks.key")
        XCTAssertEqual(jwks.authorizedIssuers, ["spiffe://example.org/ekey/issuer"])
        XCTAssertEqual(jwks.admins, ["spiffe://example.org/ekey/admin"])
        XCTAssertEqual(jwks.cacheMaxAge, .seconds(30))
        XCTAssertEqual(jwks.retain, .seconds(86_400))
    }

    func testEmptyFileIsTheMemoryStoreAndNoService() throws {
        let loaded = try load("")
        XCTAssertEqual(loaded.config, StackConfig())
        XCTAssertEqual(loaded.config.sections, ["store"])
        XCTAssertThrowsError(try loaded.config.require(GatewayConfig.self)) { error in
            XCTAssertEqual(
                "\(error)",
                "config error at gateway: ekey-gateway needs a 'gateway:' section and the config file has none; add it (see docs/configuration.md)")
        }
        XCTAssertThrowsError(try loaded.config.require(IssuerConfig.self))
        XCTAssertThrowsError(try loaded.config.require(JWKSConfig.self))
    }

    func testDefaults() throws {
        let yaml = """
            \(minimalIssuer)
            \(minimalGateway)
            jwks:
              tls: none
            """
        let loaded = try load(yaml)
        let config = loaded.config
        XCTAssertEqual(config.store, StoreConfig())
        let issuer = try config.require(IssuerConfig.self)
        XCTAssertEqual(issuer.listen.description, "0.0.0.0:8443")
        XCTAssertEqual(issuer.adminListen.description, "127.0.0.1:9101")
        XCTAssertEqual(issuer.clockSkew, .seconds(5))
        XCTAssertEqual(issuer.signing, SigningConfig(alg: .es256, isAlgorithmExplicit: false, rotateEvery: .seconds(86_400)))
        XCTAssertEqual(issuer.jwksURI.absoluteString, "https://127.0.0.1:7443/.well-known/jwks.json")
        XCTAssertEqual(issuer.clients, [])
        XCTAssertEqual(issuer.idps, [])
        XCTAssertEqual(issuer.templates[0].maxLimit, 1)
        XCTAssertEqual(issuer.templates[0].maxTTL, .seconds(60))
        XCTAssertNil(issuer.templates[0].ratePerMinute)
        XCTAssertEqual(issuer.templates[0].delegateSubjects, [])

        let gateway = try config.require(GatewayConfig.self)
        XCTAssertEqual(gateway.listen.description, "0.0.0.0:9443")
        XCTAssertEqual(gateway.adminListen.description, "127.0.0.1:9102")
        XCTAssertEqual(gateway.clockSkew, .seconds(5))
        XCTAssertEqual(gateway.dpop, DPoPConfig())
        XCTAssertEqual(gateway.dpop.maxAge, .seconds(5))
        XCTAssertEqual(gateway.dpop.nonceWindow, .seconds(60))
        XCTAssertFalse(gateway.dpop.requireATH)
        XCTAssertFalse(gateway.dpop.nonce)
        XCTAssertEqual(gateway.timeouts, TimeoutsConfig(connect: .seconds(2), firstByte: .seconds(30), idle: .seconds(60)))
        XCTAssertNil(gateway.jwks.ca)

        let jwks = try config.require(JWKSConfig.self)
        XCTAssertEqual(jwks.listen.description, "0.0.0.0:7443")
        XCTAssertEqual(jwks.adminListen.description, "127.0.0.1:9103")
        XCTAssertEqual(jwks.cacheMaxAge, .seconds(30))
        XCTAssertEqual(jwks.retain, .seconds(86_400))
        XCTAssertEqual(jwks.authorizedIssuers, [])
        XCTAssertTrue(loaded.warnings.contains { $0.contains("jwks.authorized_issuers is empty") })
    }

    func testTLSNoneIsPlaintextWithAWarning() throws {
        let loaded = try load(minimalGateway)
        let gateway = try loaded.config.require(GatewayConfig.self)
        XCTAssertEqual(gateway.tls, .none)
        XCTAssertTrue(gateway.tls.isPlaintext)
        XCTAssertNil(gateway.tls.files)
        XCTAssertTrue(loaded.warnings.contains { $0.contains("gateway.tls is none") && $0.contains("plaintext") })
    }

    /// A gateway without `store.url` counts uses in its own memory: with replicas, a limit-1
    /// token would work once per replica. The loader says so (logged at start, shown by
    /// `ekey config check`); a `store.url`, even `memory://`, or `EKEY_STORE_URL` silences it.
    func testAGatewayOnTheDefaultMemoryStoreIsWarnedAboutReplicas() throws {
        let implicit = try load(minimalGateway)
        XCTAssertFalse(implicit.config.store.isExplicit)
        XCTAssertTrue(implicit.warnings.contains { $0.contains("store.url is not set") && $0.contains("replica") }, "\(implicit.warnings)")
        let explicit = try load("store:\n  url: memory://\n" + minimalGateway)
        XCTAssertTrue(explicit.config.store.isExplicit)
        XCTAssertFalse(explicit.warnings.contains { $0.contains("store.url is not set") })
        let fromEnvironment = try load(minimalGateway, environment: ["EKEY_STORE_URL": "redis://127.0.0.1:6379"])
        XCTAssertEqual(fromEnvironment.config.store.kind, .redis)
        XCTAssertFalse(fromEnvironment.warnings.contains { $0.contains("store.url is not set") })
    }

    func testRelativePathsResolveFromTheConfigFolder() throws {
        let yaml = """
            gateway:
              tls: {cert: pki/gateway.crt, key: ./pki/../pki/gateway.key, client_ca: /etc/ekey/ca.crt, client_auth: required, min_version: "1.2"}
              issuer: https://issuer.example.com
              jwks: {url: https://127.0.0.1:7443/.well-known/jwks.json, ca: pki/ca.crt}
              dpop: {nonce: true, nonce_secret_file: pki/dpop-nonce.key}
              routes:
                - {prefix: /api, upstream: "https://10.0.0.5:8443", upstream_ca: certs/upstream.crt, audience: a, public_origin: "https://api.example.com",
                   timeouts: {first_byte: 2m}}
            """
        let loaded = try load(yaml)
        let gateway = try loaded.config.require(GatewayConfig.self)
        let files = try XCTUnwrap(gateway.tls.files)
        XCTAssertEqual(files.cert, "\(fixturesDirectory)/pki/gateway.crt")
        XCTAssertEqual(files.key, "\(fixturesDirectory)/pki/gateway.key")
        XCTAssertEqual(files.clientCA, "/etc/ekey/ca.crt")
        XCTAssertEqual(files.clientAuth, .required)
        XCTAssertEqual(files.minVersion, .tls12)
        XCTAssertEqual(gateway.jwks.ca, "\(fixturesDirectory)/pki/ca.crt")
        XCTAssertEqual(gateway.dpop.nonceSecretFile, "\(fixturesDirectory)/pki/dpop-nonce.key")
        XCTAssertEqual(gateway.routes[0].upstreamCA, "\(fixturesDirectory)/certs/upstream.crt")
        XCTAssertEqual(gateway.routes[0].timeouts, TimeoutsConfig(connect: .seconds(2), firstByte: .seconds(120), idle: .seconds(60)))
        XCTAssertTrue(loaded.warnings.contains { $0.contains("gateway.routes.0.upstream_ca") && $0.contains("does not exist") })
        XCTAssertTrue(loaded.warnings.contains { $0.contains("/etc/ekey/ca.crt") })
    }

    func testFileAndIdPVariants() throws {
        let yaml = """
            store: {url: "redis-cluster://h1:7000,h2:7000", prefix: "ek:"}
            issuer:
              issuer_url: https://issuer.example.com
              tls: none
              signing: {key_file: pki/issuer.key, alg: eddsa}
              publisher: {url: https://127.0.0.1:7443, ca: pki/ca.crt, cert: pki/issuer-client.crt, key: pki/issuer-client.key}
              idps: [{name: corp, issuer: "https://idp.corp", audience: ekey, jwks_file: pki/ca.crt, subject_claim: email}]
              templates:
                - {name: t, subjects: ["*"], audiences: [a], actions: ["GET:/x/*"], binds: [dpop, MTLS], max_ttl: 45s, max_limit: 5}
            """
        let config = try load(yaml).config
        XCTAssertEqual(config.store, StoreConfig(url: "redis-cluster://h1:7000,h2:7000", kind: .redisCluster, prefix: "ek:", isExplicit: true))
        let issuer = try config.require(IssuerConfig.self)
        XCTAssertEqual(issuer.signing.keyFile, "\(fixturesDirectory)/pki/issuer.key")
        XCTAssertEqual(issuer.signing.alg, .edDSA)
        XCTAssertEqual(issuer.idps[0].keys, .file("\(fixturesDirectory)/pki/ca.crt"))
        XCTAssertEqual(issuer.idps[0].subjectClaim, "email")
        XCTAssertEqual(issuer.templates[0].binds, [.dpop, .mtls])
        XCTAssertEqual(issuer.templates[0].maxTTL, .seconds(45))
        XCTAssertEqual(issuer.templates[0].maxLimit, 5)
    }

    func testResolvePath() throws {
        XCTAssertEqual(try ConfigLoader.resolvePath(flag: "a.yaml", environment: ["EKEY_CONFIG": "b.yaml"]), "a.yaml")
        XCTAssertEqual(try ConfigLoader.resolvePath(flag: nil, environment: ["EKEY_CONFIG": "b.yaml"]), "b.yaml")
        XCTAssertThrowsError(try ConfigLoader.resolvePath(flag: nil, environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("pass --config FILE or set EKEY_CONFIG"), "\(error)")
        }
    }

    func testMissingFileAndBadYAML() {
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent/ekey.yaml", environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("cannot read /nonexistent/ekey.yaml"), "\(error)")
        }
        let errors = loadErrors("gateway:\n  listen: [unclosed\n")
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors.first?.message.contains("not valid YAML") == true, "\(errors)")
        XCTAssertTrue(errors.first?.message.contains("line") == true, "\(errors)")
        let duplicate = loadErrors("store: {url: memory://}\nstore: {prefix: a}\n")
        XCTAssertTrue(duplicate.first?.message.contains("duplicate") == true, "\(duplicate)")
    }
}
