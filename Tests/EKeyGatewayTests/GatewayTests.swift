import AsyncHTTPClient
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The gateway end to end over real TLS 1.3 and HTTP/2: the verification steps with
/// hostile input, the upstream contract, the usage promise and fail-closed behaviour.
@Suite(.serialized)
struct GatewayTests {
    @Test func dpopBoundCallIsForwardedWithTrustedHeadersOnly() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 2)
            let answer = try await harness.send(
                client, port: ports.gateways[0],
                headers: [
                    ("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token)),
                    ("X-EKey-Sub", "spiffe://evil/admin"), ("x-ekey-use", "0/999"), ("Connection", "x-secret"), ("X-Secret", "hop"),
                    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("Forwarded", "for=6.6.6.6"),
                    ("X-Forwarded-For", "6.6.6.6"), ("Content-Type", "application/json"),
                ],
                body: ByteBuffer(string: "{\"amount\":10}"))
            #expect(answer.status == 201)
            #expect(answer.version == .http2)
            #expect(answer.body.contains("\"length\":13"))
            #expect(answer.headers["keep-alive"].isEmpty, "hop-by-hop response headers are removed")
            let seen = try #require(await harness.recorder.seen.first)
            #expect(seen.method == "POST")
            #expect(seen.path == "/payments")
            #expect(seen.headers["x-ekey-sub"] == [harness.workloadID], "client-sent X-EKey-* never reaches the upstream")
            #expect(seen.headers["x-ekey-use"] == ["1/2"])
            #expect(seen.headers["x-ekey-action"] == ["POST:/payments"])
            #expect(seen.headers["x-ekey-trace"]?.first?.count == 32)
            #expect(seen.headers["authorization"] == nil)
            #expect(seen.headers["dpop"] == nil)
            #expect(seen.headers["x-secret"] == nil, "headers named by Connection are hop-by-hop")
            #expect(seen.headers["x-forwarded-for"] == nil)
            #expect(seen.headers["forwarded"]?.count == 1)
            #expect(seen.headers["forwarded"]?.first?.hasPrefix("for=127.0.0.1") == true)
            #expect(seen.headers["traceparent"] == ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
        }
    }

    @Test func replayedProofAndSpentLimitAreRefusedAndNeverForwarded() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .edDSA)
            let token = try harness.dpopToken(key, limit: 2)
            let proof = try harness.proof(key, token: token)
            let headers = [("Authorization", "DPoP \(token)"), ("DPoP", proof)]
            #expect(try await harness.send(client, port: ports.gateways[0], headers: headers).status == 201)
            let replay = try await harness.send(client, port: ports.gateways[0], headers: headers)
            #expect(replay.status == 401)
            #expect(replay.error == "replay_detected")
            #expect(replay.challenges == ["DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\""])
            let second = [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))]
            #expect(try await harness.send(client, port: ports.gateways[0], headers: second).status == 201)
            let third = [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))]
            let spent = try await harness.send(client, port: ports.gateways[0], headers: third)
            #expect(spent.status == 401)
            #expect(spent.error == "replay_detected")
            #expect(await harness.recorder.count == 2)
            let metrics = try await harness.adminGet(port: ports.admins[0], "/metrics")
            #expect(metrics.contains("ekey_verify_replay_blocked_total 2"))
            #expect(metrics.contains("ekey_verify_success_total 2"))
            #expect(metrics.contains("ekey_verify_failure_total{reason=\"replay_blocked\"} 2"))
            #expect(metrics.contains("ekey_store_seconds_count"))
            #expect(try await harness.adminGet(port: ports.admins[0], "/readyz").hasPrefix("ready"))
        }
    }

    @Test func missingOrForeignAuthorizationGetsBothChallenges() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client(http1: true)
        try await harness.run { ports in
            for headers in [[], [("Authorization", "Basic dXNlcjpwYXNz")], [("Authorization", "DPoP")]] {
                let answer = try await harness.send(client, port: ports.gateways[0], headers: headers)
                #expect(answer.status == 401)
                #expect(answer.version == .http1_1)
                #expect(answer.error == "invalid_request")
                #expect(answer.challenges == ["DPoP algs=\"ES256 EdDSA\"", "EKey"])
            }
            let huge = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "EKey " + String(repeating: "a", count: 9000))])
            #expect(huge.status == 400)
            #expect(huge.error == "invalid_request")
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key)
            let bearer = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "Bearer \(token)"), ("DPoP", try harness.proof(key, token: token))])
            #expect(bearer.status == 401)
            #expect(bearer.error == "invalid_token")
            #expect(bearer.challenges == ["Bearer error=\"invalid_token\""])
            let two = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("Authorization", "DPoP \(token)")])
            #expect(two.status == 400)
            #expect(await harness.recorder.count == 0)
        }
    }

    @Test func pathTricksAreRejectedBeforeAnythingElse() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client(http1: true)
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "POST:/payments/*")
            for path in ["/payments/../admin", "/payments/%2e%2e/admin", "/payments%2Fadmin", "/payments//x", "/payments/./x", "/payments/%2E", "/payments/%5c"] {
                let answer = try await harness.send(
                    client, port: ports.gateways[0], .POST, path,
                    headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, path: path))])
                #expect(answer.status == 400, "\(path)")
                #expect(answer.error == "invalid_request", "\(path)")
            }
            for path in ["/payments/%zz", "/payments/%", "/payments/%2", "/%2e%2e/payments", "/payments/a%00b"] {
                let curl = try ExternalCommand(
                    "curl", ["-s", "--http2", "--path-as-is", "--cacert", harness.files.path("ca.crt"), "-X", "POST", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "-H", "Authorization: DPoP \(token)", "-H", "DPoP: \(try harness.proof(key, token: token, path: path))",
                        "https://localhost:\(ports.gateways[0])\(path)"]
                ).run()
                #expect(String(decoding: curl.stdout, as: UTF8.self) == "400 2", "\(path) sent raw over HTTP/2")
            }
            #expect(await harness.recorder.count == 0)
        }
    }

    @Test func hostileTokensAreRefusedWithTheRightCodes() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            func call(_ token: String, proofKey: PrivateSigningKey? = nil) async throws -> GatewayHarness.Answer {
                try await harness.send(
                    client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(proofKey ?? key, token: token))])
            }
            let expired = try harness.dpopToken(key, lifetime: 10, issuedAt: GatewayHarness.now - 60)
            #expect(try await call(expired).error == "expired_token")
            #expect(try await call(try harness.dpopToken(key, audience: "https://other.test")).error == "invalid_token")
            let good = try harness.dpopToken(key)
            let parts = good.split(separator: ".")
            let none = Base64URL.encode(Array(#"{"alg":"none","typ":"EKEY","kid":"issuer-1"}"#.utf8)) + "." + parts[1] + "."
            #expect(try await call(none).error == "invalid_token")
            let hs256 = Base64URL.encode(Array(#"{"alg":"HS256","typ":"EKEY","kid":"issuer-1"}"#.utf8)) + "." + parts[1] + "." + parts[2]
            #expect(try await call(hs256).error == "invalid_token")
            let wrongTyp = Base64URL.encode(Array(#"{"alg":"ES256","typ":"JWT","kid":"issuer-1"}"#.utf8)) + "." + parts[1] + "." + parts[2]
            #expect(try await call(wrongTyp).error == "invalid_token")
            let unknownKid = Base64URL.encode(Array(#"{"alg":"ES256","typ":"EKEY","kid":"forged"}"#.utf8)) + "." + parts[1] + "." + parts[2]
            #expect(try await call(unknownKid).error == "invalid_token")
            let injected = Base64URL.encode(JSONValue.object(["alg": "ES256", "typ": "EKEY", "kid": "issuer-1", "jwk": key.publicKey.jwk.jsonValue]).serializedBytes()) + "." + parts[1] + "." + parts[2]
            #expect(try await call(injected).error == "invalid_token")
            let tampered = parts[0] + "." + Base64URL.encode(Array("{\"sub\":\"admin\"}".utf8)) + "." + parts[2]
            #expect(try await call(String(tampered)).error == "invalid_token")
            let otherKey = PrivateSigningKey(generating: .es256)
            let wrongProofKey = try await call(good, proofKey: otherKey)
            #expect(wrongProofKey.status == 401)
            #expect(wrongProofKey.error == "invalid_proof")
            #expect(wrongProofKey.challenges.first?.hasPrefix("DPoP error=\"invalid_dpop_proof\"") == true)
            #expect(await harness.recorder.count == 0)
        }
    }

    @Test func proofDefectsAndCapabilityMismatch() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, subcap: ["GET:/payments/:id"], limit: 5)
            let port = ports.gateways[0]
            let missing = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)")])
            #expect(missing.status == 401)
            #expect(missing.error == "invalid_proof")
            let proof = try harness.proof(key, token: token)
            let twice = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof), ("DPoP", proof)])
            #expect(twice.status == 400)
            let wrongPath = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, path: "/refunds"))])
            #expect(wrongPath.error == "invalid_proof")
            let wrongMethod = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "PUT"))])
            #expect(wrongMethod.error == "invalid_proof")
            let old = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, issuedAt: GatewayHarness.now - 30))])
            #expect(old.error == "invalid_proof")
            let outside = try await harness.send(
                client, port: port, .DELETE, "/payments/42", headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "DELETE", path: "/payments/42"))])
            #expect(outside.status == 403)
            #expect(outside.error == "capability_mismatch")
            #expect(outside.challenges == ["DPoP error=\"insufficient_scope\", algs=\"ES256 EdDSA\""])
            #expect(await harness.recorder.count == 0, "nothing refused is forwarded")
            let subcap = try await harness.send(
                client, port: port, .GET, "/payments/42?expand=1",
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET", path: "/payments/42"))])
            #expect(subcap.status == 200, "a subcap entry allows the call; htu excludes the query")
            #expect(await harness.recorder.seen.last?.path == "/payments/42?expand=1")
            #expect(await harness.recorder.seen.last?.headers["x-ekey-action"] == ["GET:/payments/:id"])
        }
    }

    @Test func mtlsBoundTokenNeedsItsCertificate() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let workload = try harness.client(certificate: "workload")
        let other = try harness.client(certificate: "other")
        let anonymous = try harness.client()
        try await harness.run { ports in
            let token = try harness.mtlsToken()
            let port = ports.gateways[0]
            #expect(try await harness.send(workload, port: port, headers: [("Authorization", "EKey \(token)")]).status == 201)
            #expect(try await harness.send(workload, port: port, headers: [("Authorization", "Bearer \(token)")]).status == 201)
            let wrong = try await harness.send(other, port: port, headers: [("Authorization", "EKey \(token)")])
            #expect(wrong.status == 401)
            #expect(wrong.error == "invalid_proof")
            #expect(wrong.challenges == ["EKey error=\"invalid_token\""])
            #expect(try await harness.send(anonymous, port: port, headers: [("Authorization", "EKey \(token)")]).error == "invalid_proof")
            #expect(await harness.recorder.count == 2)
        }
    }

    @Test func serverNoncesAreDemandedAndSharedByReplicas() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(gateways: 2, nonce: true) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 3)
            let first = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            #expect(first.status == 401)
            #expect(first.error == "use_dpop_nonce")
            #expect(first.challenges == ["DPoP error=\"use_dpop_nonce\", algs=\"ES256 EdDSA\""])
            let nonce = try #require(first.headers.first(name: "dpop-nonce"))
            let stale = try await harness.send(
                client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, nonce: "made-up"))])
            #expect(stale.error == "use_dpop_nonce")
            for port in ports.gateways {
                let answer = try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, nonce: nonce))])
                #expect(answer.status == 201, "every replica accepts the shared nonce")
            }
        }
    }

    @Test(arguments: [GatewayHarness.UpstreamProtocol.http1, .h2c])
    func unreachableUpstreamGives502AndTheUseBack(upstream: GatewayHarness.UpstreamProtocol) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(upstreamUp: false, upstream: upstream) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            for attempt in 1...2 {
                let down = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
                #expect(down.status == 502, "attempt \(attempt): \(down.body)")
                #expect(down.error == "bad_gateway", "attempt \(attempt): the use was given back, so the limit-1 token is not spent")
            }
        }
    }

    @Test func slowUpstreamGives504AndKeepsTheUse() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "GET:/slow", limit: 1)
            let slow = try await harness.send(client, port: ports.gateways[0], .GET, "/slow", headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET", path: "/slow"))])
            #expect(slow.status == 504)
            #expect(slow.error == "gateway_timeout")
            let again = try await harness.send(client, port: ports.gateways[0], .GET, "/slow", headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET", path: "/slow"))])
            #expect(again.error == "replay_detected", "the upstream may have seen the request, so the use stays spent")
        }
    }

    @Test func requestWithoutContentLengthIsSentWithItsBodyOrWithoutOne() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "GET:/payments", limit: 2)
            func headers() throws -> [(String, String)] {
                [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET"))]
            }
            let plain = try await harness.send(client, port: ports.gateways[0], .GET, "/payments", headers: try headers())
            #expect(plain.status == 200)
            let bare = try #require(await harness.recorder.seen.last)
            #expect(bare.headers["transfer-encoding"] == nil, "a GET that ended with its HEADERS reaches a legacy upstream without a chunked body")
            #expect(bare.headers["content-length"] == nil)
            #expect(bare.bodyLength == 0)

            // HTTP/2 DATA without Content-Length still reaches the upstream, chunked.
            var request = HTTPClientRequest(url: "https://localhost:\(ports.gateways[0])/payments")
            request.method = .GET
            for (name, value) in try headers() { request.headers.add(name: name, value: value) }
            let chunks = AsyncStream<ByteBuffer> { continuation in
                for _ in 0..<4 { continuation.yield(ByteBuffer(repeating: 0x42, count: 25_000)) }
                continuation.finish()
            }
            request.body = .stream(chunks, length: .unknown)
            let response = try await client.execute(request, timeout: .seconds(20))
            _ = try await response.body.collect(upTo: 1 << 20)
            #expect(response.status == .ok)
            #expect(response.version == .http2)
            let streamed = try #require(await harness.recorder.seen.last)
            #expect(streamed.bodyLength == 100_000)
            #expect(streamed.headers["transfer-encoding"] == ["chunked"])
        }
    }

    @Test(arguments: [GatewayHarness.UpstreamProtocol.http1, .h2c])
    func smallResponseStalledMidBodyGives504AndKeepsTheUse(upstream: GatewayHarness.UpstreamProtocol) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(upstream: upstream) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "POST:/stall-sized", limit: 1)
            func call() async throws -> GatewayHarness.Answer {
                // A small request body of known length: the request is sent whole and the
                // small response is read whole.
                try await harness.send(
                    client, port: ports.gateways[0], .POST, "/stall-sized",
                    headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, path: "/stall-sized"))],
                    body: ByteBuffer(string: "{\"amount\":10}"))
            }
            let started = ContinuousClock.now
            let stalled = try await call()
            #expect(stalled.status == 504, "\(stalled.body)")
            #expect(stalled.error == "gateway_timeout", "a small body is read whole, so the client gets a clean error, never part of it")
            #expect(!stalled.body.contains("partial"))
            #expect(ContinuousClock.now - started < .seconds(6), "the idle timeout (2 s) ends it before the upstream (8 s) does")
            #expect(try await call().error == "replay_detected", "the upstream saw the request, so the use stays spent")
            let metrics = try await harness.adminGet(port: ports.admins[0], "/metrics")
            #expect(metrics.contains("ekey_verify_failure_total{reason=\"upstream_error\"} 1"), "the failure is counted once (the single audit event itself is not captured by this harness)")
        }
    }

    @Test func upstreamAnsweringBeforeReadingTheBodyDoesNotBreakTheGateway() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        let http1 = try harness.client(http1: true)
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "POST:/early", limit: 1000)
            let body = ByteBuffer(repeating: 0x41, count: 1 << 20)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<60 {
                    let proof = try harness.proof(key, token: token, path: "/early")
                    let client = index % 2 == 0 ? client : http1
                    group.addTask {
                        (try? await harness.send(client, port: ports.gateways[0], .POST, "/early", headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof)], body: body).status) ?? -1
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count >= 50, "\(statuses)")
            let after = try await harness.send(
                client, port: ports.gateways[0], .POST, "/early",
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, path: "/early"))], body: ByteBuffer(string: "x"))
            #expect(after.status == 200, "the gateway is still up after upstreams that answered early")
        }
    }

    @Test func upstreamStallingMidResponseResetsTheDownstreamStream() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            try await expectStalledBodyIsCut(harness, client, port: ports.gateways[0], key: key)
            let token2 = try harness.dpopToken(key)
            let after = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token2)"), ("DPoP", try harness.proof(key, token: token2))])
            #expect(after.status == 201, "the gateway and the client's connection keep working")
        }
    }

    @Test func largeBodiesStreamBothWays() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        _ = try await harness.run { ports in
            try await expectBodiesCrossBothWays(harness, client, port: ports.gateways[0], upload: 24 << 20, downloadMiB: 16)
        }
    }

    @Test func httpsUpstreamIsReachedOverHTTP2WithBodiesBothWays() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(upstream: .tls) { ports in
            let seen = try await expectBodiesCrossBothWays(harness, client, port: ports.gateways[0], upload: 3 << 20, downloadMiB: 4)
            #expect(seen.http2, "an https:// upstream offering h2 is spoken to over HTTP/2")
            #expect(seen.headers["x-ekey-use"] == ["1/1"])
            #expect(seen.headers["authorization"] == nil)
        }
    }

    @Test func h2cUpstreamCarriesCallsBodiesTimeoutsAndParallelStreams() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        let http1 = try harness.client(http1: true)
        try await harness.run(upstream: .h2c) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 2)
            let answer = try await harness.send(
                client, port: ports.gateways[0],
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token)), ("X-EKey-Sub", "spiffe://evil/admin"), ("Content-Type", "application/json")],
                body: ByteBuffer(string: "{\"amount\":10}"))
            #expect(answer.status == 201, "\(answer.body)")
            #expect(answer.body.contains("\"length\":13"))
            let seen = try #require(await harness.recorder.seen.last)
            #expect(seen.http2, "an h2c:// upstream is spoken to over HTTP/2")
            #expect(seen.path == "/payments")
            #expect(seen.headers["x-ekey-sub"] == [harness.workloadID])
            #expect(seen.headers["x-ekey-use"] == ["1/2"])
            #expect(seen.headers["authorization"] == nil)
            #expect(seen.headers["dpop"] == nil)

            try await expectBodiesCrossBothWays(harness, http1, port: ports.gateways[0], upload: 3 << 20, downloadMiB: 4)

            let parallelToken = try harness.dpopToken(key, limit: 40)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<40 {
                    let proof = try harness.proof(key, token: parallelToken)
                    group.addTask {
                        try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(parallelToken)"), ("DPoP", proof)], body: ByteBuffer(string: "{}")).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 201, count: 40), "40 streams at once share the h2c connections: \(statuses)")

            let slowToken = try harness.dpopToken(key, action: "GET:/slow", limit: 1)
            let slow = try await harness.send(
                client, port: ports.gateways[0], .GET, "/slow",
                headers: [("Authorization", "DPoP \(slowToken)"), ("DPoP", try harness.proof(key, token: slowToken, method: "GET", path: "/slow"))])
            #expect(slow.status == 504)
            #expect(slow.error == "gateway_timeout")

            try await expectStalledBodyIsCut(harness, client, port: ports.gateways[0], key: key)

            let lastToken = try harness.dpopToken(key, limit: 2)
            let after = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(lastToken)"), ("DPoP", try harness.proof(key, token: lastToken))])
            #expect(after.status == 201, "the h2c connection keeps working after a timeout and a reset stream: \(after.body)")

            // The upstream closes connections idle for 1 s (GOAWAY, then close).
            try await Task.sleep(for: .milliseconds(2500))
            let reconnected = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(lastToken)"), ("DPoP", try harness.proof(key, token: lastToken))])
            #expect(reconnected.status == 201, "a closed h2c connection is replaced: \(reconnected.body)")
        }
    }

    @Test(arguments: [ScriptedH2CUpstream.Script.refusedStream, .goAway])
    func h2cRequestTheUpstreamDidNotProcessIsSentAgain(script: ScriptedH2CUpstream.Script) async throws {
        try await withScriptedUpstream(script) { harness, client, ports, upstream in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            let answer = try await harness.send(
                client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))],
                body: ByteBuffer(string: "{\"amount\":10}"))
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.body == "ok")
            #expect(upstream.refused == 1, "the first stream was refused")
            #expect(upstream.answered == 1, "and the request was sent once more, on a stream the upstream processed")
        }
    }

    @Test func h2cStreamedBodyRefusedByTheUpstreamGives502AndTheUseBack() async throws {
        try await withScriptedUpstream(.refusedStream) { harness, client, ports, upstream in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            let body = ByteBuffer(repeating: 0x7B, count: 256 << 10)
            let refused = try await harness.send(
                client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))], body: body)
            #expect(refused.status == 502, "a streamed body cannot be sent again: \(refused.body)")
            #expect(refused.error == "bad_gateway")
            let again = try await harness.send(
                client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))], body: body)
            #expect(again.status == 200, "the refused stream was not processed, so the limit-1 token's use was given back: \(again.body)")
            #expect(upstream.refused == 1)
            #expect(upstream.answered == 1)
        }
    }

    @Test func h2cUpstreamAnsweringEarlyAndResettingEveryStreamKeepsServing() async throws {
        try await withScriptedUpstream(.resetAfterAnswer) { harness, client, ports, upstream in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 480)
            // 480 streams answered while the gateway is still sending the body, each then
            // reset with NO_ERROR: 240 resets on each of the gateway's two upstream
            // connections, more than NIOHTTP2's default allowance (200 per 30 s), and every
            // response must still reach the client.
            let body = ByteBuffer(repeating: 0x41, count: 128 << 10)
            let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var statuses: [Int] = []
                        for _ in 0..<60 {
                            let answer = try await harness.send(
                                client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))],
                                body: body)
                            statuses.append(answer.status)
                        }
                        return statuses
                    }
                }
                return try await group.reduce(into: [Int]()) { $0 += $1 }
            }
            #expect(statuses.filter { $0 == 200 }.count == 480, "every early answer reaches the client: \(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
            #expect(upstream.answered == 480)
        }
    }

    /// Runs `body` against a gateway whose only route is a fresh ``ScriptedH2CUpstream``,
    /// which is stopped afterwards, also when `body` fails.
    private func withScriptedUpstream(
        _ script: ScriptedH2CUpstream.Script,
        _ body: (GatewayHarness, HTTPClient, GatewayHarness.Ports, ScriptedH2CUpstream) async throws -> Void
    ) async throws {
        let upstream = ScriptedH2CUpstream(script: script)
        let port = try await upstream.start()
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        do {
            try await harness.run(upstream: .external("h2c://127.0.0.1:\(port)")) { ports in
                try await body(harness, client, ports, upstream)
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }
}

/// PUTs `upload` bytes to `/upload` and GETs `/big/<downloadMiB>` through the gateway,
/// each with its own DPoP-bound token, and checks what the upstream received and what came
/// back. Returns what the upstream saw of the upload.
@discardableResult
private func expectBodiesCrossBothWays(
    _ harness: GatewayHarness, _ client: HTTPClient, port: Int, upload size: Int, downloadMiB: Int
) async throws -> SeenRequest {
    let key = PrivateSigningKey(generating: .es256)
    let token = try harness.dpopToken(key, action: "PUT:/upload")
    let upload = try await harness.send(
        client, port: port, .PUT, "/upload",
        headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "PUT", path: "/upload"))],
        body: ByteBuffer(repeating: 0x5A, count: size))
    #expect(upload.status == 200, "\(upload.body)")
    let seen = try #require(await harness.recorder.seen.last)
    #expect(seen.bodyLength == size)
    let downloadToken = try harness.dpopToken(key, action: "GET:/big/:n")
    let download = try await harness.send(
        client, port: port, .GET, "/big/\(downloadMiB)",
        headers: [("Authorization", "DPoP \(downloadToken)"), ("DPoP", try harness.proof(key, token: downloadToken, method: "GET", path: "/big/\(downloadMiB)"))])
    #expect(download.status == 200)
    #expect(download.body.utf8.count == downloadMiB << 20)
    return seen
}

/// GETs `/stall`, whose upstream sends a head and part of a body and then nothing for 8 s:
/// the gateway's idle timeout (2 s) must cut the stream, so the client never sees a
/// complete-looking body.
private func expectStalledBodyIsCut(_ harness: GatewayHarness, _ client: HTTPClient, port: Int, key: PrivateSigningKey) async throws {
    let token = try harness.dpopToken(key, action: "GET:/stall", limit: 1)
    let started = ContinuousClock.now
    let stalled = try? await harness.send(
        client, port: port, .GET, "/stall",
        headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET", path: "/stall"))])
    #expect(stalled == nil || stalled?.body == "partial", "the client never gets a complete-looking body: \(String(describing: stalled?.body))")
    #expect(ContinuousClock.now - started < .seconds(6), "the idle timeout (2 s) ends the stalled stream before the upstream (8 s) does")
}

extension GatewayHarness.UpstreamProtocol: CustomTestStringConvertible {
    var testDescription: String { url(port: 0) }
}
