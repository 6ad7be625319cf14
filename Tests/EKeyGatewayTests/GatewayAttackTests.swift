import AsyncHTTPClient
import Crypto
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The FAPI 2.0 DPoP negative-test list, the E-Key prototype's client style, concurrency
/// on one trace, a Redis outage, stale nonces, and a Python httpx + joserfc client.
@Suite(.serialized)
struct GatewayAttackTests {
    /// Signs an arbitrary proof header and payload (no builder checks), with `alg` set by the key
    /// unless the header names one.
    static func rawProof(header: [String: JSONValue], payload: [String: JSONValue], key: PrivateSigningKey, breakSignature: Bool = false) throws -> String {
        var protected = header
        if protected["alg"] == nil { protected["alg"] = .string(key.algorithm.rawValue) }
        let input = Base64URL.encode(JSONValue.object(protected).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(payload).serializedBytes())
        var signature = try key.signature(for: Array(input.utf8))
        if breakSignature { signature[0] ^= 0x01 }
        return input + "." + Base64URL.encode(signature)
    }

    struct ProofCase: Sendable {
        let name: String
        let succeeds: Bool
        let headers: @Sendable (_ token: String, _ key: PrivateSigningKey) throws -> [(String, String)]
    }

    static func standardClaims(_ token: String, htu: String = GatewayHarness.audience + "/payments", iat: Int64 = GatewayHarness.now) -> [String: JSONValue] {
        ["jti": .string(DPoPProof.randomJTI()), "htm": "POST", "htu": .string(htu), "iat": .integer(iat), "ath": .string(EKeyToken.accessTokenHash(token))]
    }

    static func header(_ key: PrivateSigningKey) -> [String: JSONValue] {
        ["typ": "dpop+jwt", "jwk": key.publicKey.jwk.jsonValue]
    }

    static func proof(_ token: String, _ key: PrivateSigningKey, header edit: (inout [String: JSONValue]) -> Void = { _ in }, claims change: (inout [String: JSONValue]) -> Void = { _ in }, breakSignature: Bool = false) throws -> String {
        var header = header(key)
        edit(&header)
        var claims = standardClaims(token)
        change(&claims)
        return try rawProof(header: header, payload: claims, key: key, breakSignature: breakSignature)
    }

    static let fapiCases: [ProofCase] = [
        ProofCase(name: "header name in capitals", succeeds: true) { token, key in [("Authorization", "DPoP \(token)"), ("DPOP", try proof(token, key))] },
        ProofCase(name: "htu with query and fragment", succeeds: true) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htu"] = .string(GatewayHarness.audience + "/payments?x=1#frag") }))]
        },
        ProofCase(name: "htu scheme and host in upper case", succeeds: true) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htu"] = "HTTPS://API.TEST/payments" }))]
        },
        ProofCase(name: "htu with explicit default port", succeeds: true) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htu"] = "https://api.test:443/payments" }))]
        },
        ProofCase(name: "extra header and payload claims", succeeds: true) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["x-extra"] = "1" }, claims: { $0["extra"] = .array([1, 2]) }))]
        },
        ProofCase(name: "first use of a fixed jti", succeeds: true) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["jti"] = "fixed-jti-1" }))]
        },
        ProofCase(name: "several DPoP headers", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key)), ("DPoP", try proof(token, key))]
        },
        ProofCase(name: "not a JWT", succeeds: false) { token, _ in [("Authorization", "DPoP \(token)"), ("DPoP", "this-is-not-a-jwt")] },
        ProofCase(name: "missing typ", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["typ"] = nil }))] },
        ProofCase(name: "missing jwk", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["jwk"] = nil }))] },
        ProofCase(name: "missing alg", succeeds: false) { token, key in
            var header = header(key)
            header["alg"] = .null
            return [("Authorization", "DPoP \(token)"), ("DPoP", try rawProof(header: header, payload: standardClaims(token), key: key))]
        },
        ProofCase(name: "missing jti", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["jti"] = nil }))] },
        ProofCase(name: "missing htm", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htm"] = nil }))] },
        ProofCase(name: "missing htu", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htu"] = nil }))] },
        ProofCase(name: "missing iat", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["iat"] = nil }))] },
        ProofCase(name: "missing ath (no prototype nonce either)", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["ath"] = nil }))]
        },
        ProofCase(name: "wrong typ", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["typ"] = "jwt" }))] },
        ProofCase(name: "alg changed to EdDSA on a P-256 key", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["alg"] = "EdDSA" }))]
        },
        ProofCase(name: "alg none", succeeds: false) { token, key in
            let input = Base64URL.encode(JSONValue.object(["typ": "dpop+jwt", "alg": "none", "jwk": key.publicKey.jwk.jsonValue]).serializedBytes()) + "."
                + Base64URL.encode(JSONValue.object(standardClaims(token)).serializedBytes())
            return [("Authorization", "DPoP \(token)"), ("DPoP", input + ".")]
        },
        ProofCase(name: "broken signature", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, breakSignature: true))] },
        ProofCase(name: "private key in jwk", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, header: { $0["jwk"] = key.jwk.jsonValue }))]
        },
        ProofCase(name: "wrong htm", succeeds: false) { token, key in [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htm"] = "GET" }))] },
        ProofCase(name: "other htu", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["htu"] = "https://api.test/refunds" }))]
        },
        ProofCase(name: "iat an hour ahead", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["iat"] = .integer(GatewayHarness.now + 3600) }))]
        },
        ProofCase(name: "iat an hour behind", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["iat"] = .integer(GatewayHarness.now - 3600) }))]
        },
        ProofCase(name: "second use of a jti", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["jti"] = "fixed-jti-1" }))]
        },
        ProofCase(name: "wrong ath", succeeds: false) { token, key in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, key, claims: { $0["ath"] = .string(EKeyToken.accessTokenHash(token + "x")) }))]
        },
        ProofCase(name: "another key", succeeds: false) { token, _ in
            [("Authorization", "DPoP \(token)"), ("DPoP", try proof(token, PrivateSigningKey(generating: .es256)))]
        },
        ProofCase(name: "no proof", succeeds: false) { token, _ in [("Authorization", "DPoP \(token)")] },
        ProofCase(name: "DPoP-bound token downgraded to Bearer", succeeds: false) { token, key in [("Authorization", "Bearer \(token)"), ("DPoP", try proof(token, key))] },
    ]

    @Test func fapiDPoPNegativeAndPositiveCases() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1000)
            var expectedForwarded = 0
            for testCase in Self.fapiCases {
                let answer = try await harness.send(client, port: ports.gateways[0], headers: try testCase.headers(token, key))
                if testCase.succeeds {
                    expectedForwarded += 1
                    #expect(answer.status == 201, "\(testCase.name): \(answer.body)")
                } else {
                    #expect([400, 401].contains(answer.status), "\(testCase.name): \(answer.status) \(answer.body)")
                    #expect(answer.error != nil, "\(testCase.name): a JSON error body")
                }
                #expect(await harness.recorder.count == expectedForwarded, "\(testCase.name): refused proofs never reach the upstream")
            }
        }
    }

    @Test func prototypeClientStyleAndSignatureDefects() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client(http1: true)
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .edDSA)
            let token = try harness.dpopToken(key, limit: 5)
            let trace = try EKeyToken(parsing: token).jws.payload
            let traceValue = try StrictJSONParser().parseObject(trace)["trace"]!.stringValue!
            let prototypeProof = try Self.proof(token, key, claims: { $0["ath"] = nil; $0["nonce"] = .string(traceValue) })
            let prototype = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "EKey \(token)"), ("DPoP", prototypeProof)])
            #expect(prototype.status == 201, "the prototype's Authorization: EKey + nonce = trace form: \(prototype.body)")
            #expect(prototype.version == .http1_1)
            let wrongNonce = try Self.proof(token, key, claims: { $0["ath"] = nil; $0["nonce"] = "not-the-trace" })
            #expect(try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "EKey \(token)"), ("DPoP", wrongNonce)]).error == "invalid_proof")

            let parts = token.split(separator: ".").map(String.init)
            var signature = try Base64URL.decode(parts[2])
            signature[5] ^= 0x20
            let badSignature = parts[0] + "." + parts[1] + "." + Base64URL.encode(signature)
            let bad = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(badSignature)"), ("DPoP", try harness.proof(key, token: badSignature))])
            #expect(bad.status == 401)
            #expect(bad.error == "invalid_token")
            #expect(bad.challenges == ["DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\""])

            var claims = try harness.claims(confirmation: .jwkThumbprint(key.publicKey.jwk.thumbprint))
            claims.issuer = "https://evil.test"
            let foreign = try EKeyToken.sign(claims, keyID: harness.keyID, bind: .dpop, using: harness.signingKey)
            #expect(try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(foreign)"), ("DPoP", try harness.proof(key, token: foreign))]).error == "invalid_token")
            #expect(await harness.recorder.count == 1)
        }
    }

    @Test func oneTraceUnderConcurrencyAcrossTwoGatewaysSharingRedis() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let client = try harness.client()
        try await harness.run(gateways: 2, storeURL: redis.url) { ports in
            for limit in [1, 3] {
                let key = PrivateSigningKey(generating: .es256)
                let token = try harness.dpopToken(key, limit: limit)
                let proofs = try (0..<100).map { _ in try harness.proof(key, token: token) }
                let before = await harness.recorder.count
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for (index, proof) in proofs.enumerated() {
                        group.addTask {
                            try await harness.send(client, port: ports.gateways[index % 2], headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof)]).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == 201 }.count == limit)
                #expect(statuses.filter { $0 == 401 }.count == 100 - limit)
                #expect(await harness.recorder.count - before == limit, "exactly \(limit) reach the upstream")
            }
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 10)
            let proof = try harness.proof(key, token: token)
            let both = try await withThrowingTaskGroup(of: Int.self) { group in
                for port in ports.gateways {
                    group.addTask { try await harness.send(client, port: port, headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof)]).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(both.sorted() == [201, 401], "two replicas never both accept one proof")
        }
    }

    @Test func redisOutageFailsClosedAndRecoversWithoutRestart() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let client = try harness.client()
        try await harness.run(storeURL: redis.url) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 100)
            func call() async throws -> GatewayHarness.Answer {
                try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            }
            #expect(try await call().status == 201)
            redis.stop()
            #expect(!ServiceProcess.canConnect(port: redis.port), "redis-server is down")
            let down = try await call()
            #expect(down.status == 503)
            #expect(down.error == "temporarily_unavailable")
            #expect(await harness.recorder.count == 1, "nothing is forwarded while the store is down")
            #expect(try await harness.adminGet(port: ports.admins[0], "/readyz").contains("store"))
            try redis.start()
            var recovered = false
            for _ in 0..<50 where !recovered {
                recovered = try await call().status == 201
                if !recovered { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(recovered, "the same gateway serves again once Redis is back")
        }
    }

    @Test func nonceTwoWindowsOldIsRefused() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(nonce: true) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 3)
            let source = try DPoPNonceSource(secret: Array(String(repeating: "k", count: 40).utf8), window: .seconds(60))
            let old = source.nonce(now: GatewayHarness.now - 120)
            let refused = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, nonce: old))])
            #expect(refused.error == "use_dpop_nonce")
            #expect(refused.headers.first(name: "dpop-nonce") == source.nonce(now: GatewayHarness.now))
            let previous = source.nonce(now: GatewayHarness.now - 60)
            #expect(try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, nonce: previous))]).status == 201)
        }
    }

    @Test func pythonHTTPXClientWithJoserfcProofsWorksOverHTTP2() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let script = try #require(Bundle.module.path(forResource: "httpx_client", ofType: "py", inDirectory: "Interop"))
        let keyFile = harness.files.path("python-key.json")
        try await harness.run { ports in
            let publicJWK = try ExternalCommand.python([script, "keygen", keyFile]).run().stdout
            let jwk = try JWK(parsing: StrictJSONParser().parse(Array(publicJWK)), context: .publicOnly)
            let claims = try harness.claims(confirmation: .jwkThumbprint(jwk.thumbprint))
            let token = try EKeyToken.sign(claims, keyID: harness.keyID, bind: .dpop, using: harness.signingKey)
            let output = try ExternalCommand.python([
                script, "call", keyFile, harness.files.path("ca.crt"), "https://localhost:\(ports.gateways[0])/payments", GatewayHarness.audience + "/payments", token, "{\"amount\":1}",
            ]).run().stdout
            let result = try StrictJSONParser().parseObject(Array(output))
            #expect(result["status"] == 201)
            #expect(result["http_version"] == "HTTP/2")
            #expect(await harness.recorder.count == 1)
        }
    }
}
