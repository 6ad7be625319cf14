import AsyncHTTPClient
import Crypto
import NIOSSL
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `ekey-jwks` as a real process with real TLS on free ports: ALPN, TLS versions, config
/// errors at start, graceful shutdown, and replicas sharing one Redis.
@Suite(.serialized)
struct PublisherProcessTests {
    let files: TemporaryFiles
    let issuerID = "spiffe://example.org/ekey/issuer"
    let adminID = "spiffe://example.org/ekey/admin"

    init() throws {
        let pki: DevelopmentPKI
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        try files.write("issuer", pki.issueClient(commonName: "issuer", spiffeID: issuerID))
        try files.write("admin", pki.issueClient(commonName: "admin", spiffeID: adminID))
    }

    /// A stack file with the `store` and `jwks` sections; paths are relative to the file.
    func writeConfig(name: String = "stack.yaml", port: Int, adminPort: Int, store: String = "memory://", extra: String = "") throws -> String {
        try files.write(
            name,
            """
            store:
              url: \(store)
              prefix: "ekey-test:"
            \(StackYAML.jwks(port: port, adminPort: adminPort, issuer: issuerID, admin: adminID, cacheMaxAge: "10s"))
            \(extra)
            """)
    }

    func startPublisher(store: String = "memory://") async throws -> (ServiceProcess, Int, Int) {
        let port = try FreePort.pick()
        let adminPort = try FreePort.pick()
        let config = try writeConfig(name: "stack-\(port).yaml", port: port, adminPort: adminPort, store: store)
        let process = try ServiceProcess("ekey-jwks", ["--config", config])
        try await process.waitUntilListening(port: port)
        try await process.waitUntilListening(port: adminPort)
        return (process, port, adminPort)
    }

    @Test func aServicePinnedToOneCPURunsOneEventLoop() async throws {
        defer { files.remove() }
        for (cpus, expected) in [("0", 1), (nil, System.coreCount)] {
            let port = try FreePort.pick()
            let adminPort = try FreePort.pick()
            let config = try writeConfig(name: "stack-\(port).yaml", port: port, adminPort: adminPort)
            let process = try ServiceProcess("ekey-jwks", ["--config", config], cpus: cpus)
            try await process.waitUntilListening(port: port)
            let names = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/task").map {
                (try? String(contentsOfFile: "/proc/\(process.pid)/task/\($0)/comm", encoding: .utf8)) ?? ""
            }
            let loops = names.filter { $0.hasPrefix("NIO-SGLTN-") }.count
            #expect(loops == expected, "taskset -c \(cpus ?? "(none)"): threads \(names.sorted())")
            process.signal(SIGTERM)
            #expect(try await process.waitForExit() == 0, "\(process.output)")
        }
    }

    func client(_ identity: String?, http1: Bool = false) throws -> HTTPClient {
        try files.httpsClient(certificate: identity, http1: http1)
    }

    func send(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, body: String? = nil) async throws -> (Int, HTTPVersion, HTTPHeaders, String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.version, response.headers, String(buffer: bytes))
    }

    func registration(_ kid: String) -> String {
        let jwk = PrivateSigningKey.p256(.init()).publicKey.jwk.with(keyID: kid, algorithm: .es256)
        return JSONValue.object(["kid": .string(kid), "jwk": jwk.jsonValue]).serialized()
    }

    @Test func servesHTTP2AndHTTP1OverTLS13AndRefusesTLS12() async throws {
        defer { files.remove() }
        let (publisher, port, adminPort) = try await startPublisher()
        let issuer = try client("issuer")
        let legacy = try client(nil, http1: true)
        let (status, version, _, _) = try await send(issuer, .POST, "https://localhost:\(port)/internal/v1/keys", body: registration("k1"))
        #expect(status == 201)
        #expect(version == .http2)
        let (jwksStatus, jwksVersion, headers, body) = try await send(legacy, .GET, "https://localhost:\(port)/.well-known/jwks.json")
        #expect(jwksStatus == 200)
        #expect(jwksVersion == .http1_1)
        #expect(headers.first(name: "cache-control") == "public, max-age=10")
        #expect(try JWKSet(parsing: Array(body.utf8)).keys.map(\.keyID) == ["k1"])

        let tls13 = try ExternalCommand("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-alpn", "h2", "-CAfile", files.path("ca.crt")])
            .runAllowingFailure(input: Data())
        #expect(tls13.status == 0, "\(tls13.stderr)")
        #expect(String(decoding: tls13.stdout, as: UTF8.self).contains("ALPN protocol: h2"))
        let tls12 = try ExternalCommand("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2", "-CAfile", files.path("ca.crt")])
            .runAllowingFailure(input: Data())
        #expect(tls12.status != 0, "a TLS 1.2-only client must be refused by default")

        let metrics = try await send(legacy, .GET, "http://127.0.0.1:\(adminPort)/metrics").3
        #expect(metrics.contains("ekey_jwks_registrations_total{outcome=\"created\"} 1"))
        #expect(metrics.contains("ekey_jwks_requests_total{route=\"jwks\"} 1"))
        #expect(await publisher.output(contains: "\"label\":\"audit\""), "registrations are audited as JSON lines")
        #expect(!publisher.output.contains("\"d\":"), "no private key material in logs")
        publisher.signal(SIGTERM)
        #expect(try await publisher.waitForExit() == 0)
        try await issuer.shutdown()
        try await legacy.shutdown()
    }

    @Test func configErrorsStopTheProcessNamingTheKeyOrFile() async throws {
        defer { files.remove() }
        let cases: [(String, String)] = [
            ("jwks:\n  listen: 127.0.0.1:1\n  cache_max_agee: 10s\n", "jwks.cache_max_agee"),
            ("jwks:\n  listen: 127.0.0.1:1\n  retain: 5x\n", "jwks.retain"),
            ("jwks:\n  listen: 127.0.0.1:1\n  tls: {cert: missing.crt, key: server.key}\n", "missing.crt"),
            ("store:\n  url: memory://\n", "jwks"),
        ]
        for (index, (yaml, expected)) in cases.enumerated() {
            let path = try files.write("bad-\(index).yaml", yaml)
            let process = try ServiceProcess("ekey-jwks", ["--config", path])
            let status = try await process.waitForExit()
            #expect(status != 0, "\(yaml)")
            #expect(process.output.contains(expected), "the message names \(expected): \(process.output)")
        }
        let process = try ServiceProcess("ekey-jwks", [])
        #expect(try await process.waitForExit() != 0)
        #expect(process.output.contains("EKEY_CONFIG"), "with no config the message says how to give one")
    }

    @Test func sigtermLetsASlowRequestFinishThenExitsZero() async throws {
        defer { files.remove() }
        let (publisher, port, _) = try await startPublisher()
        let admin = try client("admin")
        var request = HTTPClientRequest(url: "https://localhost:\(port)/internal/v1/keys")
        request.method = .PUT
        let (chunks, feed) = AsyncStream.makeStream(of: ByteBuffer.self)
        request.body = .stream(chunks, length: .unknown)
        let pending = Task { try await admin.execute(request, timeout: .seconds(20)) }
        feed.yield(ByteBuffer(string: "{\"keys\":"))
        // Time for the connection, the TLS handshake and the head to reach the publisher on
        // a loaded machine: the request must be in flight when SIGTERM arrives.
        try await Task.sleep(for: .seconds(2))
        publisher.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(500))
        #expect(publisher.isRunning, "the in-flight request holds the shutdown")
        let latecomer = try client(nil, http1: true)
        let refused: (Int, HTTPVersion, HTTPHeaders, String)
        do {
            refused = try await send(latecomer, .GET, "https://localhost:\(port)/.well-known/jwks.json")
        } catch {
            // Shut the clients down before failing: a client left open aborts the test process.
            try? await latecomer.shutdown()
            feed.finish()
            _ = await pending.result
            try? await admin.shutdown()
            throw error
        }
        try await latecomer.shutdown()
        #expect(refused.0 == 503, "a request arriving during the drain is refused cleanly")
        #expect(refused.2.first(name: "connection") == "close")
        feed.yield(ByteBuffer(string: "[]}"))
        feed.finish()
        let outcome = await pending.result
        try await admin.shutdown()
        let status = try await publisher.waitForExit()
        let response = try outcome.get()
        #expect(response.status == .ok)
        #expect(status == 0)
        #expect(!ServiceProcess.canConnect(port: port))
    }

    @Test func aKidRevokedThroughOneReplicaIsRefusedByEveryReplica() async throws {
        defer { files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let replicas = [try await startPublisher(store: redis.url), try await startPublisher(store: redis.url)]
        let issuer = try client("issuer")
        let admin = try client("admin")
        let reader = try client(nil)
        let key = registration("shared")
        #expect(try await send(issuer, .POST, "https://localhost:\(replicas[0].1)/internal/v1/keys", body: key).0 == 201)
        #expect(try await send(admin, .DELETE, "https://localhost:\(replicas[1].1)/internal/v1/keys/shared").0 == 204)
        for replica in replicas {
            let (status, _, _, body) = try await send(issuer, .POST, "https://localhost:\(replica.1)/internal/v1/keys", body: key)
            #expect(status == 410, "\(body)")
            #expect(body.contains("key_revoked"))
            let (_, _, _, set) = try await send(reader, .GET, "https://localhost:\(replica.1)/.well-known/jwks.json")
            #expect(try JWKSet(parsing: Array(set.utf8)).keys.isEmpty)
        }
        #expect(await replicas[0].0.output(contains: "\"outcome\":\"denied\""), "the refused registration is audited")
        for replica in replicas {
            replica.0.signal(SIGTERM)
            #expect(try await replica.0.waitForExit() == 0)
        }
        for client in [issuer, admin, reader] { try await client.shutdown() }
    }

    @Test func replicasSharingRedisServeTheSameKeySetAndSurviveRestart() async throws {
        defer { files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        var replicas: [(ServiceProcess, Int, Int)] = []
        for _ in 0..<3 {
            replicas.append(try await startPublisher(store: redis.url))
        }
        let issuer = try client("issuer")
        let reader = try client(nil)
        #expect(try await send(issuer, .POST, "https://localhost:\(replicas[0].1)/internal/v1/keys", body: registration("shared")).0 == 201)
        #expect(try await send(issuer, .POST, "https://localhost:\(replicas[1].1)/internal/v1/keys", body: registration("shared")).0 == 409,
            "another replica sees the kid taken")
        var tags = Set<String>()
        for replica in replicas {
            let (status, _, headers, body) = try await send(reader, .GET, "https://localhost:\(replica.1)/.well-known/jwks.json")
            #expect(status == 200)
            #expect(try JWKSet(parsing: Array(body.utf8)).keys.map(\.keyID) == ["shared"])
            tags.insert(headers.first(name: "etag") ?? "")
        }
        #expect(tags.count == 1, "every replica computes the same ETag")
        for replica in replicas {
            replica.0.signal(SIGTERM)
            #expect(try await replica.0.waitForExit() == 0)
        }
        let (restarted, port, _) = try await startPublisher(store: redis.url)
        let (_, _, _, body) = try await send(reader, .GET, "https://localhost:\(port)/.well-known/jwks.json")
        #expect(try JWKSet(parsing: Array(body.utf8)).keys.map(\.keyID) == ["shared"], "the key set survives a restart")
        restarted.signal(SIGTERM)
        #expect(try await restarted.waitForExit() == 0)
        try await issuer.shutdown()
        try await reader.shutdown()
    }
}
