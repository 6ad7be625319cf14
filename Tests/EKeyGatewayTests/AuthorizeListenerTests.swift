import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The authorize listener driven by a real HTTP client the way Envoy's ext_authz HTTP
/// service and Traefik's ForwardAuth call it (no Envoy or Traefik binary here): who is
/// answered, where the original request and client certificate are read from, and input
/// that must be refused rather than guessed.
@Suite struct AuthorizeListenerTests {
    static let envoyID = "spiffe://example.org/edge/envoy"

    /// The authorize listener as docs/authorize.md sets it up for nginx: plaintext on loopback,
    /// answering only 127.0.0.1.
    static let loopbackAuthorize = AuthorizeConfig(
        listen: ListenAddress(host: "127.0.0.1", port: 0), tls: .none, trustedClients: [TrustedClient(parsing: "127.0.0.1/32")!])

    /// Envoy-style: TLS with required client certificates, answering only `envoyID`, with `path_prefix`.
    static func envoyAuthorize(_ harness: GatewayHarness) throws -> AuthorizeConfig {
        try harness.files.write("edge", harness.pki.issueClient(commonName: "envoy", spiffeID: envoyID))
        return AuthorizeConfig(
            listen: ListenAddress(host: "127.0.0.1", port: 0),
            tls: .enabled(
                TLSFiles(cert: harness.files.path("server.crt"), key: harness.files.path("server.key"), clientCA: harness.files.path("ca.crt"), clientAuth: .required)),
            trustedClients: [TrustedClient(parsing: envoyID)!], pathPrefix: "/ext_authz")
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Runs `body` with a harness whose gateway has ``envoyAuthorize(_:)``, an HTTPS client
    /// presenting Envoy's certificate, and the authorize listener's port.
    static func withEnvoy(_ body: (GatewayHarness, HTTPClient, Int) async throws -> Void) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let authorize = try envoyAuthorize(harness)
        let envoy = try harness.client(certificate: "edge")
        try await harness.run(authorize: authorize) { ports in try await body(harness, envoy, ports.authorizes[0]) }
    }

    @Test func envoyHTTPConventionsPathPrefixAndHTTP2() async throws {
        try await Self.withEnvoy { harness, envoy, port in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 2)
            let allowed = try await harness.send(
                envoy, port: port, .POST, "/ext_authz/payments?x=1",
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            #expect(allowed.status == 200, "\(allowed.body)")
            #expect(allowed.version == .http2, "the listener serves HTTP/2 over TLS")
            #expect(allowed.body.isEmpty)
            #expect(allowed.headers["x-ekey-sub"] == [harness.workloadID])
            #expect(allowed.headers["x-ekey-action"] == ["POST:/payments"])
            #expect(allowed.headers["x-ekey-use"] == ["1/2"])
            #expect(allowed.headers["x-ekey-trace"].first?.count ?? 0 > 0)

            // The refusal is the gateway's own: status, JSON body and challenge.
            let noProof = try await harness.send(envoy, port: port, .POST, "/ext_authz/payments", headers: [("Authorization", "DPoP \(token)")])
            #expect(noProof.status == 401)
            #expect(noProof.error == "invalid_proof")
            #expect(noProof.challenges.first?.hasPrefix("DPoP error=\"invalid_dpop_proof\"") == true)

            // Without path_prefix the listener cannot tell the original path: refused.
            let unprefixed = try await harness.send(
                envoy, port: port, .POST, "/payments", headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            #expect(unprefixed.status == 400)
            #expect(unprefixed.body.contains("path_prefix"))
            #expect(await harness.recorder.count == 0, "the authorize listener forwards nothing")
        }
    }

    @Test func xfccHashAndCertBindMTLSTokens() async throws {
        try await Self.withEnvoy { harness, envoy, port in
            let token = try harness.mtlsToken(limit: 10)
            let hash = Self.hex(harness.workloadCertificateSHA256)
            let pem = try String(contentsOfFile: harness.files.path("workload.crt"), encoding: .utf8)
            let escaped = pem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let otherPEM = try String(contentsOfFile: harness.files.path("other.crt"), encoding: .utf8)
            let otherEscaped = otherPEM.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            func check(_ xfcc: String?, ssl: String? = nil) async throws -> GatewayHarness.Answer {
                var headers = [("Authorization", "Bearer \(token)")]
                if let xfcc { headers.append(("X-Forwarded-Client-Cert", xfcc)) }
                if let ssl { headers.append(("X-SSL-Client-Cert", ssl)) }
                return try await harness.send(envoy, port: port, .POST, "/ext_authz/payments", headers: headers)
            }
            #expect(try await check("By=spiffe://example.org/edge;Hash=\(hash);Subject=\"CN=checkout, O=x\";URI=spiffe://example.org/checkout").status == 200)
            #expect(try await check("Cert=\"\(escaped)\";Hash=\(hash.uppercased())").status == 200)
            #expect(try await check("Cert=\(escaped)").status == 200)
            #expect(try await check(nil, ssl: escaped).status == 200)
            #expect(try await check("Hash=\(hash)", ssl: escaped).status == 200)

            let wrong = try await check("Hash=\(String(repeating: "ab", count: 32))")
            #expect(wrong.status == 401)
            #expect(wrong.error == "invalid_proof")
            #expect(wrong.challenges == ["Bearer error=\"invalid_token\""])
            #expect(try await check(nil).error == "invalid_proof", "no certificate header: the proxy's own TLS certificate never binds")
            // Ambiguity is refused, not resolved.
            #expect(try await check("Hash=\(hash),Hash=\(hash)").status == 400, "several XFCC elements")
            #expect(try await check("Cert=\(otherEscaped);Hash=\(hash)").status == 400, "Cert and Hash disagree")
            #expect(try await check("Hash=\(hash)", ssl: otherEscaped).status == 400, "XFCC and X-SSL-Client-Cert disagree")
            #expect(try await check("Hash=12ab").status == 400)
            #expect(try await check("Cert=not-a-certificate").status == 400)
        }
    }

    @Test func untrustedCallersGet403AndTheirHeadersAreNeverRead() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let stranger = try harness.client(certificate: "other")
        let authorize = try Self.envoyAuthorize(harness)
        let envoy = try harness.client(certificate: "edge")
        try await harness.run(authorize: authorize) { ports in
            let port = ports.authorizes[0]
            let token = try harness.mtlsToken(limit: 1)
            let forged = [("Authorization", "EKey \(token)"), ("X-Forwarded-Client-Cert", "Hash=\(Self.hex(harness.workloadCertificateSHA256))")]
            let before = try await harness.adminGet(port: ports.admins[0], "/metrics")
            #expect(before.contains("ekey_authorize_untrusted_total 0"), "exported from start")
            let refused = try await harness.send(stranger, port: port, .POST, "/ext_authz/payments", headers: forged)
            #expect(refused.status == 403)
            #expect(refused.error == "access_denied")
            #expect(refused.headers["x-ekey-sub"].isEmpty)
            let after = try await harness.adminGet(port: ports.admins[0], "/metrics")
            #expect(after.contains("ekey_authorize_untrusted_total 1"))
            #expect(!after.contains("reason=\"untrusted_client\""), "an untrusted call is not a verification failure")
            // Nothing was counted: the trusted proxy still gets the token's only use.
            #expect(try await harness.send(envoy, port: port, .POST, "/ext_authz/payments", headers: forged).status == 200)
        }
        // Address ranges: a loopback caller outside the trusted range.
        let plain = AuthorizeConfig(listen: ListenAddress(host: "127.0.0.1", port: 0), tls: .none, trustedClients: [TrustedClient(parsing: "127.0.0.2/32")!])
        try await harness.run(authorize: plain) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key)
            let answer = try await Self.plainSend(
                port: ports.authorizes[0],
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token)), ("X-Original-Method", "POST"), ("X-Original-URI", "/payments")])
            #expect(answer.status == 403)
        }
    }

    @Test func hostileForwardedRequestsFailClosed() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: Self.loopbackAuthorize) { ports in
            let port = ports.authorizes[0]
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "POST:/payments/:id", limit: 1)
            func ask(_ forwarded: [(String, String)], proofPath: String = "/payments/1") async throws -> Int {
                let headers = [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, path: proofPath))] + forwarded
                return try await Self.plainSend(port: port, method: .GET, path: "/anything", headers: headers).status
            }
            for path in ["/payments/../payments/1", "/payments/%2e%2e/1", "/payments/%2E", "/payments/a%2Fb", "//payments/1", "/payments//1", "payments/1", "https://api.test/payments/1", "/payments/1 HTTP/1.1"] {
                #expect(try await ask([("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", path)], proofPath: path.hasPrefix("/") ? path : "/x") == 400, "X-Forwarded-Uri \(path)")
                #expect(try await ask([("X-Original-Method", "POST"), ("X-Original-URI", path)], proofPath: path.hasPrefix("/") ? path : "/x") == 400, "X-Original-URI \(path)")
            }
            let conflicting: [[(String, String)]] = [
                [("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", "/payments/1"), ("X-Forwarded-Uri", "/payments/2")],
                [("X-Forwarded-Method", "POST"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/payments/1")],
                [("X-Forwarded-Method", "POST")],
                [("X-Original-URI", "/payments/1")],
                [("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", "/payments/1"), ("X-Original-Method", "POST"), ("X-Original-URI", "/payments/2")],
                [("X-Forwarded-Method", "POST / HTTP/1.1"), ("X-Forwarded-Uri", "/payments/1")],
            ]
            for forwarded in conflicting {
                #expect(try await ask(forwarded) == 400, "\(forwarded)")
            }
            // Agreeing conventions are one request; and nothing above used the token's one use.
            let agreeing = [("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", "/payments/1"), ("X-Original-Method", "POST"), ("X-Original-URI", "/payments/1")]
            #expect(try await ask(agreeing) == 200)
        }
    }

    @Test func sixtyParallelCallsForALimitThreeTokenAllowExactlyThree() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        try await harness.run(storeURL: redis.url, authorize: Self.loopbackAuthorize) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 3)
            let proofs = try (0..<60).map { _ in try harness.proof(key, token: token) }
            let answers = try await withThrowingTaskGroup(of: GatewayHarness.Answer.self) { group in
                for proof in proofs {
                    group.addTask {
                        try await Self.plainSend(
                            port: ports.authorizes[0],
                            headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof), ("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", "/payments")])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.filter { $0.status == 200 }.count == 3)
            #expect(answers.filter { $0.status == 401 && $0.error == "replay_detected" }.count == 57)
            #expect(Set(answers.filter { $0.status == 200 }.flatMap { $0.headers["x-ekey-use"] }) == ["1/3", "2/3", "3/3"])
        }
    }

    /// One request over plain HTTP/1.1 to the loopback listener.
    static func plainSend(
        port: Int, method: HTTPMethod = .POST, path: String = "/", headers: [(String, String)]
    ) async throws -> GatewayHarness.Answer {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        do {
            let response = try await client.execute(request, timeout: .seconds(20))
            let body = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            return GatewayHarness.Answer(status: Int(response.status.code), version: response.version, headers: response.headers, body: String(buffer: body))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}
