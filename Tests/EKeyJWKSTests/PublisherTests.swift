import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyJWKS
import EKeyProtocol
import EKeyServer
import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// The publisher over real TLS 1.3 and HTTP/2 (in-process, memory key store): the JWKS
/// document, registration rules, authorisation, revocation, export/import, and the
/// gateway's JWKS cache and the issuer's registration client against it.
struct PublisherTests {
    let files: TemporaryFiles
    let issuerID = "spiffe://example.org/ekey/issuer"
    let adminID = "spiffe://example.org/ekey/admin"

    init() throws {
        let pki: DevelopmentPKI
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        try files.write("issuer", pki.issueClient(commonName: "issuer", spiffeID: issuerID))
        try files.write("admin", pki.issueClient(commonName: "admin", spiffeID: adminID))
        try files.write("intruder", pki.issueClient(commonName: "intruder", spiffeID: "spiffe://example.org/intruder"))
    }

    /// Runs `body` against a publisher in this process. A test shuts its clients down at the
    /// end of `body`: the publisher's graceful shutdown waits for connections still open to it.
    func withPublisher<R: Sendable>(
        keys: any PublishedKeyStore = PublisherTests.memoryKeys(), now: @escaping @Sendable () -> Int64 = WallClock.epochSeconds,
        metrics: MetricsRegistry = MetricsRegistry(), _ body: (Int, Int) async throws -> R
    ) async throws -> R {
        let tls = try TLSSetup.server(
            certificateFile: files.path("server.crt"), keyFile: files.path("server.key"), clientCAFile: files.path("ca.crt"),
            clientCertificates: .optional)
        let publisher = Publisher(
            settings: .init(authorizedIssuers: [issuerID], admins: [adminID], cacheMaxAge: .seconds(30), retain: .seconds(60)),
            keys: keys, listeners: .init(host: "127.0.0.1", port: 0, tls: try ServerTLS(configuration: tls), adminHost: "127.0.0.1", adminPort: 0),
            metrics: metrics, logger: Logger(label: "test"), now: now)
        return try await LiveServices.with(roles: ["jwks", "admin"], { try publisher.services(onRunning: $0) }) { ports in
            try await body(ports["jwks"]!, ports["admin"]!)
        }
    }

    /// The embedded store, as `store.url: memory://` gives it.
    static func memoryKeys() -> StoreBackedKeys {
        StoreBackedKeys(stores: try! Stores.make(url: "memory://", eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test")))
    }

    func client(_ identity: String?) throws -> HTTPClient {
        try InternalHTTPClient.make(
            caFile: files.path("ca.crt"), certificateFile: identity.map { files.path("\($0).crt") }, keyFile: identity.map { files.path("\($0).key") })
    }

    struct Answer {
        var status: Int
        var version: HTTPVersion
        var headers: HTTPHeaders
        var body: String
        var json: [String: JSONValue]? { try? StrictJSONParser().parseObject(Array(body.utf8)) }
    }

    func send(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(5))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), version: response.version, headers: response.headers, body: String(buffer: bytes))
    }

    func publishedKeyIDs(_ client: HTTPClient, _ base: String) async throws -> [String] {
        let answer = try await send(client, .GET, base + "/.well-known/jwks.json")
        return try JWKSet(parsing: Array(answer.body.utf8)).keys.compactMap(\.keyID)
    }

    static func refreshCount(_ metrics: MetricsRegistry) -> Int {
        metrics.exposition().split(separator: "\n").filter { $0.hasPrefix("ekey_jwks_refresh_total{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
    }

    static func newKey(_ kid: String, algorithm: JWSAlgorithm = .es256) -> (registration: String, jwk: JWK) {
        let jwk: JWK
        switch algorithm {
        case .es256: jwk = PrivateSigningKey.p256(P256.Signing.PrivateKey()).publicKey.jwk.with(keyID: kid, algorithm: .es256)
        case .edDSA: jwk = PrivateSigningKey.ed25519(Curve25519.Signing.PrivateKey()).publicKey.jwk.with(keyID: kid, algorithm: .edDSA)
        }
        return (JSONValue.object(["kid": .string(kid), "jwk": jwk.jsonValue]).serialized(), jwk)
    }

    @Test func registrationPublishesTheKeyWithETagAndNotModified() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        let anonymous = try client(nil)
        try await withPublisher { port, admin in
            let base = "https://localhost:\(port)"
            let key = Self.newKey("k1")
            let created = try await send(issuer, .POST, base + "/internal/v1/keys", body: key.registration)
            #expect(created.status == 201)
            #expect(created.version == .http2)
            let again = try await send(issuer, .POST, base + "/internal/v1/keys", body: key.registration)
            #expect(again.status == 200)
            let ed = Self.newKey("k2", algorithm: .edDSA)
            #expect(try await send(issuer, .POST, base + "/internal/v1/keys", body: ed.registration).status == 201)

            let jwks = try await send(anonymous, .GET, base + "/.well-known/jwks.json")
            #expect(jwks.status == 200)
            #expect(jwks.headers.first(name: "cache-control") == "public, max-age=30")
            #expect(jwks.headers.first(name: "content-type") == "application/jwk-set+json")
            let set = try JWKSet(parsing: Array(jwks.body.utf8))
            #expect(set.keys.map(\.keyID) == ["k1", "k2"])
            #expect(set[keyID: "k1"]?.algorithmName == "ES256")
            #expect(set[keyID: "k2"]?.algorithmName == "EdDSA")
            #expect(set[keyID: "k1"]?.members["use"] == "sig")
            #expect(set[keyID: "k1"]?.publicJWK.jsonValue.serialized() == key.jwk.with(keyID: "k1", algorithm: .es256, use: "sig").jsonValue.serialized())
            let etag = try #require(jwks.headers.first(name: "etag"))
            let notModified = try await send(anonymous, .GET, base + "/.well-known/jwks.json", headers: [("if-none-match", etag)])
            #expect(notModified.status == 304)
            #expect(notModified.body.isEmpty)
            let otherTag = try await send(anonymous, .GET, base + "/.well-known/jwks.json", headers: [("if-none-match", "\"stale\"")])
            #expect(otherTag.status == 200)

            let metrics = try await send(anonymous, .GET, "http://127.0.0.1:\(admin)/metrics")
            #expect(metrics.body.contains("ekey_jwks_registrations_total{outcome=\"created\"} 2"))
            #expect(metrics.body.contains("ekey_jwks_requests_total{route=\"jwks\"} 3"))
            #expect(try await send(anonymous, .GET, "http://127.0.0.1:\(admin)/readyz").status == 200)
            try await issuer.shutdown()
            try await anonymous.shutdown()
        }
    }

    @Test func internalRoutesNeedACertificateAndAnAuthorisedIdentity() async throws {
        defer { files.remove() }
        let anonymous = try client(nil)
        let intruder = try client("intruder")
        let admin = try client("admin")
        try await withPublisher { port, _ in
            let base = "https://localhost:\(port)/internal/v1/keys"
            let key = Self.newKey("k1").registration
            let noCertificate = try await send(anonymous, .POST, base, body: key)
            #expect(noCertificate.status == 401)
            #expect(noCertificate.json?["error"] == "invalid_client")
            let forbidden = try await send(intruder, .POST, base, body: key)
            #expect(forbidden.status == 403)
            #expect(forbidden.body.contains("jwks.authorized_issuers"))
            #expect(try await send(admin, .POST, base, body: key).status == 403)
            #expect(try await send(anonymous, .GET, base).status == 401)
            #expect(try await send(intruder, .GET, base).status == 403)
            #expect(try await send(intruder, .DELETE, base + "/k1").status == 403)
            #expect(try await send(intruder, .PUT, base, body: "{\"keys\":[]}").status == 403)
            for client in [anonymous, intruder, admin] { try await client.shutdown() }
        }
    }

    @Test func hostileRegistrationsAreRefused() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        try await withPublisher { port, _ in
            let url = "https://localhost:\(port)/internal/v1/keys"
            let signer = PrivateSigningKey.p256(P256.Signing.PrivateKey())
            let privateJWK = signer.jwk.with(keyID: "k1", algorithm: .es256)
            let withPrivate = JSONValue.object(["kid": "k1", "jwk": privateJWK.jsonValue]).serialized()
            let answer = try await send(issuer, .POST, url, body: withPrivate)
            #expect(answer.status == 400)
            #expect(answer.body.contains("private"))
            let publicJWK = signer.publicKey.jwk
            let cases: [String] = [
                JSONValue.object(["kid": "k1", "jwk": publicJWK.with(keyID: "k1", algorithm: nil).jsonValue]).serialized(),
                JSONValue.object(["kid": "k1", "jwk": publicJWK.with(keyID: "k1", algorithm: .edDSA).jsonValue]).serialized(),
                JSONValue.object(["kid": "k1", "jwk": publicJWK.with(keyID: "other", algorithm: .es256).jsonValue]).serialized(),
                #"{"kid":"k1","jwk":{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"k1"}}"#,
                #"{"kid":"k1","jwk":{"kty":"EC","crv":"P-384","x":"AA","y":"AA","alg":"ES384","kid":"k1"}}"#,
                #"{"kid":"k1","kid":"k2","jwk":{}}"#,
                "not json",
            ]
            for body in cases {
                let refused = try await send(issuer, .POST, url, body: body)
                #expect(refused.status == 400, "\(body)")
                #expect(refused.json?["error"] == "invalid_request", "\(body)")
            }
            #expect(try await send(issuer, .POST, url, body: Self.newKey("k1").registration).status == 201)
            let conflict = try await send(issuer, .POST, url, body: Self.newKey("k1").registration)
            #expect(conflict.status == 409)
            #expect(conflict.body.contains("different key"))
            try await issuer.shutdown()
        }
    }

    @Test func revocationAndExportImportRoundTrip() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        let admin = try client("admin")
        let anonymous = try client(nil)
        try await withPublisher { port, _ in
            let base = "https://localhost:\(port)"
            for kid in ["a", "b", "c"] {
                #expect(try await send(issuer, .POST, base + "/internal/v1/keys", body: Self.newKey(kid).registration).status == 201)
            }
            #expect(try await send(admin, .DELETE, base + "/internal/v1/keys/b").status == 204)
            #expect(try await send(admin, .DELETE, base + "/internal/v1/keys/b").status == 204, "a second revocation succeeds, changing nothing")
            let set = try JWKSet(parsing: Array(try await send(anonymous, .GET, base + "/.well-known/jwks.json").body.utf8))
            #expect(set.keys.compactMap(\.keyID) == ["a", "c"])

            let export = try await send(admin, .GET, base + "/internal/v1/keys")
            #expect(export.status == 200)
            let records = try #require(export.json?["keys"]?.arrayValue)
            #expect(records.count == 2)
            #expect(records.first?["registered_by"] == .string(issuerID))
            #expect(try await send(admin, .PUT, base + "/internal/v1/keys", body: "{\"keys\":[]}").status == 200)
            #expect(try JWKSet(parsing: Array(try await send(anonymous, .GET, base + "/.well-known/jwks.json").body.utf8)).keys.isEmpty)
            let imported = try await send(admin, .PUT, base + "/internal/v1/keys", body: export.body)
            #expect(imported.status == 200)
            #expect(imported.json?["imported"] == 2)
            #expect(try await send(admin, .GET, base + "/internal/v1/keys").body == export.body)
            let duplicate = "{\"keys\":[\(records[0].serialized()),\(records[0].serialized())]}"
            #expect(try await send(admin, .PUT, base + "/internal/v1/keys", body: duplicate).status == 400)
            for client in [issuer, admin, anonymous] { try await client.shutdown() }
        }
    }

    @Test(arguments: ["memory", "redis"])
    func aRevokedKidIsRefusedWith410AndItsTombstoneTravelsWithTheExport(store: String) async throws {
        defer { files.remove() }
        let stores = try KeyStores(store)
        let issuer = try client("issuer")
        let admin = try client("admin")
        let anonymous = try client(nil)
        let clock = ManualClock(1_000_000)
        let key = Self.newKey("k1")
        let (export, recordOfK1) = try await withPublisher(keys: try stores.fresh(), now: clock.read) { (port: Int, _: Int) async throws -> (Answer, JSONValue) in
            let base = "https://localhost:\(port)"
            let keys = base + "/internal/v1/keys"
            #expect(try await send(issuer, .POST, keys, body: key.registration).status == 201)
            #expect(try await send(issuer, .POST, keys, body: Self.newKey("k2").registration).status == 201)
            let recordOfK1 = try #require(try await send(admin, .GET, keys).json?["keys"]?.arrayValue?.first { $0["kid"] == "k1" })
            clock.now = 1_000_005
            #expect(try await send(admin, .DELETE, keys + "/k1").status == 204)
            #expect(try await send(admin, .DELETE, keys + "/k1").status == 204, "revoking a revoked kid again succeeds and changes nothing")
            #expect(try await send(admin, .DELETE, keys + "/unknown").status == 404)
            for (name, body) in [("the same key", key.registration), ("another key", Self.newKey("k1").registration)] {
                let refused = try await send(issuer, .POST, keys, body: body)
                #expect(refused.status == 410, "\(name): \(refused.body)")
                #expect(refused.json?["error"] == "key_revoked", "\(name)")
                let description = refused.json?["error_description"]?.stringValue ?? ""
                #expect(description.contains("k1") && description.contains("new key"), "\(name): \(description)")
            }
            #expect(try await publishedKeyIDs(anonymous, base) == ["k2"])

            let export = try await send(admin, .GET, keys)
            #expect(export.status == 200)
            #expect(export.json?["keys"]?.arrayValue?.compactMap { $0["kid"]?.stringValue } == ["k2"])
            #expect(export.json?["revoked"] == .array([.object(["kid": "k1", "revoked_at": 1_000_005, "forget_after": 1_000_065])]))

            // An import cannot bring the revoked kid back: refused as a whole, nothing changed.
            let reviving = try await send(admin, .PUT, keys, body: JSONValue.object(["keys": [recordOfK1]]).serialized())
            #expect(reviving.status == 409, "\(reviving.body)")
            #expect(reviving.json?["error"] == "key_revoked")
            #expect(reviving.json?["error_description"]?.stringValue?.contains("k1") == true)
            #expect(try await send(admin, .GET, keys).body == export.body, "a refused import changes nothing")
            // An import without tombstones keeps the ones the publisher has.
            let keysOnly = JSONValue.object(["keys": export.json?["keys"] ?? []]).serialized()
            #expect(try await send(admin, .PUT, keys, body: keysOnly).status == 200)
            #expect(try await send(admin, .GET, keys).body == export.body)
            #expect(try await send(issuer, .POST, keys, body: key.registration).status == 410)
            return (export, recordOfK1)
        }

        // The export carries the tombstone into a new, empty publisher.
        try await withPublisher(keys: try stores.fresh(), now: clock.read) { (port: Int, _: Int) async throws -> Void in
            let base = "https://localhost:\(port)"
            let imported = try await send(admin, .PUT, base + "/internal/v1/keys", body: export.body)
            #expect(imported.status == 200, "\(imported.body)")
            #expect(imported.json?["imported"] == 1)
            #expect(try await send(admin, .GET, base + "/internal/v1/keys").body == export.body)
            let refused = try await send(issuer, .POST, base + "/internal/v1/keys", body: key.registration)
            #expect(refused.status == 410, "\(refused.body)")
            #expect(refused.json?["error"] == "key_revoked")
            #expect(try await publishedKeyIDs(anonymous, base) == ["k2"])
        }

        // An export made before tombstones existed ({"keys": [...]} alone) still imports.
        try await withPublisher(keys: try stores.fresh(), now: clock.read) { (port: Int, _: Int) async throws -> Void in
            let base = "https://localhost:\(port)"
            let old = JSONValue.object(["keys": .array([recordOfK1] + (export.json?["keys"]?.arrayValue ?? []))]).serialized()
            let imported = try await send(admin, .PUT, base + "/internal/v1/keys", body: old)
            #expect(imported.status == 200, "\(imported.body)")
            #expect(imported.json?["imported"] == 2)
            #expect(try await publishedKeyIDs(anonymous, base) == ["k1", "k2"])
        }
        for client in [issuer, admin, anonymous] { try await client.shutdown() }
        await stores.shutdown()
    }

    @Test(arguments: ["memory", "redis"])
    func aTombstoneOutlivesItsKeyByAtLeastRetain(store: String) async throws {
        defer { files.remove() }
        let stores = try KeyStores(store)
        let keys = try stores.fresh()
        let issuer = try client("issuer")
        let admin = try client("admin")
        let clock = ManualClock(1_000_000)
        try await withPublisher(keys: keys, now: clock.read) { (port: Int, _: Int) async throws -> Void in
            let url = "https://localhost:\(port)/internal/v1/keys"
            let revoked = Self.newKey("revoked")
            let expiring = Self.newKey("expiring")
            let expiringRegistration = JSONValue.object(["kid": "expiring", "jwk": expiring.jwk.jsonValue, "not_after": .integer(999_990)]).serialized()
            #expect(try await send(issuer, .POST, url, body: revoked.registration).status == 201)
            #expect(try await send(issuer, .POST, url, body: expiringRegistration).status == 201)
            #expect(try await send(admin, .DELETE, url + "/revoked").status == 204)

            // retain is 60 s: the tombstone (forget_after 1_000_060) outlives the expired key,
            // which leaves the store with the sweep at 1_000_050 and later.
            clock.now = 1_000_059
            #expect(try await keys.purge(publishedBefore: clock.now, retainSeconds: 60) == 1, "the expired key")
            #expect(try await send(issuer, .POST, url, body: revoked.registration).status == 410)
            #expect(try await send(issuer, .POST, url, body: expiringRegistration).status == 201, "a key that merely expired leaves no tombstone")
            clock.now = 1_000_060
            #expect(try await keys.purge(publishedBefore: clock.now, retainSeconds: 60) == 1, "the expired key again, not the tombstone")
            #expect(try await send(issuer, .POST, url, body: revoked.registration).status == 410, "kept until forget_after has passed")

            clock.now = 1_000_061
            #expect(try await keys.purge(publishedBefore: clock.now, retainSeconds: 60) == 1, "the tombstone")
            let export = try await send(admin, .GET, url)
            #expect(export.json?["revoked"] == .array([]), "\(export.body)")
            #expect(try await send(issuer, .POST, url, body: revoked.registration).status == 201, "the forgotten kid can be registered again")
        }
        for client in [issuer, admin] { try await client.shutdown() }
        await stores.shutdown()
    }

    @Test func keysLeaveTheSetRetainAfterNotAfter() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        let anonymous = try client(nil)
        let clock = ManualClock(1_000_000)
        try await withPublisher(now: clock.read) { (port: Int, _: Int) async throws -> Void in
            let base = "https://localhost:\(port)"
            let key = Self.newKey("old")
            let registration = JSONValue.object(["kid": "old", "jwk": key.jwk.jsonValue, "not_after": .integer(1_000_010)]).serialized()
            let status = try await send(issuer, .POST, base + "/internal/v1/keys", body: registration).status
            #expect(status == 201)
            clock.now = 1_000_069
            let before = try await publishedKeyIDs(anonymous, base)
            #expect(before == ["old"], "still published until retain has passed after not_after")
            clock.now = 1_000_070
            let after = try await publishedKeyIDs(anonymous, base)
            #expect(after.isEmpty)
            try await issuer.shutdown()
            try await anonymous.shutdown()
        }
    }

    @Test func cacheRefreshesOnUnknownKidServesStaleOnErrorAndDropsRevokedKeys() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        let admin = try client("admin")
        let fetcher = try client(nil)
        let metrics = MetricsRegistry()
        var policy = JWKSCache.Policy()
        policy.unknownKeyRefreshInterval = .seconds(1)
        policy.retryAfterFailure = .milliseconds(100)
        policy.minimumMaxAge = .milliseconds(1)
        policy.maximumMaxAge = .seconds(4)
        let keys = Self.memoryKeys()
        // The cache's time moves only when the test moves it, however loaded the machine.
        let clock = TestClock()
        let cache: JWKSCache = try await withPublisher(keys: keys) { (port: Int, _: Int) async throws -> JWKSCache in
            let base = "https://localhost:\(port)"
            let cache = JWKSCache(
                url: base + "/.well-known/jwks.json", client: fetcher, policy: policy, metrics: metrics, logger: Logger(label: "test"), clock: clock)
            #expect(try await send(issuer, .POST, base + "/internal/v1/keys", body: Self.newKey("first").registration).status == 201)
            #expect(await cache.key(forKeyID: "first") != nil)
            #expect(cache.freshKey(forKeyID: "first") != nil, "a fresh set is read without entering the actor")
            #expect(await cache.hasKeys)

            #expect(try await send(issuer, .POST, base + "/internal/v1/keys", body: Self.newKey("second").registration).status == 201)
            #expect(await cache.key(forKeyID: "second") != nil, "an unknown kid triggers one refresh")
            let fetchesBefore = Self.refreshCount(metrics)
            #expect(await cache.key(forKeyID: "forged-1") == nil)
            #expect(await cache.key(forKeyID: "forged-2") == nil)
            #expect(Self.refreshCount(metrics) == fetchesBefore, "unknown kids right after a refresh are rate-limited")
            clock.advance(by: .milliseconds(1100))
            #expect(await cache.key(forKeyID: "forged-3") == nil)
            #expect(Self.refreshCount(metrics) == fetchesBefore + 1, "one refresh once the interval has passed")

            #expect(try await send(admin, .DELETE, base + "/internal/v1/keys/first").status == 204)
            #expect(await cache.key(forKeyID: "first") != nil, "kept while the set is fresh")
            clock.advance(by: .milliseconds(4100))
            #expect(cache.freshKey(forKeyID: "first") == nil, "a stale set is not used without a refresh")
            #expect(await cache.key(forKeyID: "first") == nil, "a revoked key is dropped at the next refresh")
            #expect(await cache.key(forKeyID: "second") != nil)
            #expect(cache.freshKey(forKeyID: "first") == nil)
            #expect(cache.freshKey(forKeyID: "second") != nil)
            #expect(await cache.refresh() == .unchanged, "If-None-Match gives 304")
            return cache
        }
        #expect(await cache.refresh() == .error)
        #expect(await cache.key(forKeyID: "second") != nil, "the last good set is served while the publisher is down")
        #expect(await cache.lastRefreshError != nil)
        #expect(metrics.exposition().contains("ekey_jwks_refresh_total{outcome=\"error\"}"))
        for client in [issuer, admin, fetcher] { try await client.shutdown() }
    }

    @Test func registrationClientRetriesUntilThePublisherAnswers() async throws {
        defer { files.remove() }
        let issuer = try client("issuer")
        let intruder = try client("intruder")
        let port = try FreePort.pick()
        let registration = try KeyRegistration(body: Array(Self.newKey("k1").registration.utf8))
        let registrar = KeyRegistrationClient(baseURL: "https://localhost:\(port)", client: issuer, logger: Logger(label: "test"))
        var backoff = KeyRegistrationClient.Backoff()
        backoff.initialDelay = .milliseconds(50)
        backoff.maximumDelay = .milliseconds(200)
        let clock = TestClock()
        let pending = Task { [backoff] in try await registrar.registerWithRetry(registration, backoff: backoff, clock: clock) }
        // Two attempts fail while nothing listens on the port; the third, once the
        // publisher is up, succeeds.
        try await clock.sleepers(atLeast: 1)
        clock.advance(by: backoff.initialDelay)
        try await clock.sleepers(atLeast: 1)
        let tls = try TLSSetup.server(
            certificateFile: files.path("server.crt"), keyFile: files.path("server.key"), clientCAFile: files.path("ca.crt"),
            clientCertificates: .optional)
        let publisher = Publisher(
            settings: .init(authorizedIssuers: [issuerID], admins: []), keys: Self.memoryKeys(),
            listeners: .init(host: "127.0.0.1", port: port, tls: try ServerTLS(configuration: tls), adminHost: "127.0.0.1", adminPort: 0), logger: Logger(label: "test"))
        try await LiveServices.with(roles: ["jwks", "admin"], { try publisher.services(onRunning: $0) }) { (_: [String: Int]) async throws in
            clock.advance(by: backoff.maximumDelay)
            #expect(try await pending.value == .created)
            #expect(try await registrar.registerWithRetry(registration) == .alreadyRegistered)
            let refused = KeyRegistrationClient(baseURL: "https://localhost:\(port)", client: intruder, logger: Logger(label: "test"))
            let failure = await #expect(throws: KeyRegistrationClient.Failure.self) { try await refused.registerWithRetry(registration) }
            #expect(failure?.status == 403)
            #expect(failure?.description.contains("jwks.authorized_issuers") == true)
            try await issuer.shutdown()
            try await intruder.shutdown()
        }
    }
}

/// Empty key stores of one kind for a test: the embedded memory store, or a real
/// `redis-server` with a new key prefix for each store.
final class KeyStores: @unchecked Sendable {
    private let redis: RedisServer?
    private let lock = NSLock()
    private var made: [Stores] = []

    /// `kind` is `memory` or `redis` (which starts the server).
    init(_ kind: String) throws {
        redis = kind == "redis" ? try RedisServer() : nil
    }

    /// A store holding nothing yet.
    func fresh() throws -> StoreBackedKeys {
        let stores = try Stores.make(
            url: redis?.url ?? "memory://", prefix: "ekey-test-\(UUID().uuidString.prefix(8)):", eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test"))
        lock.withLock { made.append(stores) }
        return StoreBackedKeys(stores: stores)
    }

    /// Closes the connections and stops the server.
    func shutdown() async {
        for stores in lock.withLock({ made }) { await stores.shutdown() }
        redis?.shutdown()
    }
}

/// A settable clock for retention tests.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64) { value = start }
    @Sendable func read() -> Int64 { now }
    var now: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
