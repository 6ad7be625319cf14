import AsyncHTTPClient
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The bypasses found by reviewing the gateway as an attacker would, each as the request
/// that showed it, through the whole stack (real TLS, HTTP/1.1 and HTTP/2, real upstreams,
/// memory and Redis stores).
@Suite(.serialized)
struct BoundaryRegressionTests {
    /// A body that is itself a complete request, with identity headers of the attacker's choice.
    static let smuggled = "DELETE /admin/x HTTP/1.1\r\nHost: a\r\nX-EKey-Sub: root\r\n\r\n"

    /// A verified request whose `Connection` header nominates `Content-Length`: the gateway
    /// used to drop the length but send the body, so an `http://` upstream read the body as a
    /// second, unverified request. Now the body is framed by the gateway and reaches the
    /// upstream as the body of the one verified request.
    @Test(arguments: ["GET", "DELETE", "OPTIONS", "PURGE"])
    func aConnectionNominatedContentLengthNeverSmugglesARequest(method: String) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client(http1: true)
        try await harness.run(upstream: .http1) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "\(method):/payments")
            let answer = try await harness.send(
                client, port: ports.gateways[0], HTTPMethod(rawValue: method), "/payments",
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: method)), ("Connection", "content-length")],
                body: ByteBuffer(string: Self.smuggled))
            #expect(answer.version == .http1_1)
            try await Task.sleep(for: .milliseconds(300))
            let seen = await harness.recorder.seen
            #expect(!seen.contains { $0.path.hasPrefix("/admin") }, "the body was parsed as a request: \(seen.map { "\($0.method) \($0.path)" })")
            if method == "PURGE" || method == "OPTIONS" {
                #expect(seen.isEmpty, "the test upstream has no \(method) route; nothing else may reach it")
            } else {
                #expect(seen.count == 1)
                #expect(seen.first?.method == method)
                #expect(seen.first?.bodyLength == Self.smuggled.utf8.count, "the body arrives as the verified request's body")
                #expect(seen.first?.headers["x-ekey-sub"] == [harness.workloadID])
            }
        }
    }

    /// `X_EKey_Sub` is `X-EKey-Sub` to CGI/WSGI stacks, and method or URL overrides make
    /// frameworks run another request than the one verified: none of them reaches the upstream.
    @Test func headerAliasesAndOverridesAreStripped() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run(upstream: .h2c) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key)
            let hostile = [
                ("X_EKey_Sub", "admin"), ("x_ekey_action", "DELETE:/payments/1"), ("X_Forwarded_For", "10.0.0.1"),
                ("X-HTTP-Method-Override", "DELETE"), ("X-HTTP-Method", "DELETE"), ("X-Method-Override", "DELETE"),
                ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"), ("X_HTTP_Method_Override", "DELETE"),
            ]
            let answer = try await harness.send(
                client, port: ports.gateways[0],
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))] + hostile)
            #expect(answer.status == 201)
            let seen = try #require(await harness.recorder.seen.last)
            let aliased = seen.headers.keys.map { $0.replacingOccurrences(of: "_", with: "-") }
            #expect(aliased.filter { $0.hasPrefix("x-ekey-") }.sorted() == ["x-ekey-action", "x-ekey-sub", "x-ekey-trace", "x-ekey-use"])
            #expect(seen.headers["x-ekey-sub"] == [harness.workloadID])
            for (name, _) in hostile where !name.lowercased().hasPrefix("x_ekey") {
                let alias = name.lowercased().replacingOccurrences(of: "_", with: "-")
                #expect(!aliased.contains(alias), "\(name) reached the upstream")
            }
        }
    }

    /// A limit-1 token with a one-second lifetime is accepted until `exp` + 5 s of clock
    /// skew; its counter used to expire two seconds after the first use, and the token then
    /// worked again. The counter now lives until `exp` + skew + margin, on either store.
    @Test(arguments: [false, true])
    func aShortLivedTokensCounterOutlivesTheToken(redis useRedis: Bool) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let redis = useRedis ? try RedisServer() : nil
        defer { redis?.shutdown() }
        let client = try harness.client()
        try await harness.run(storeURL: redis?.url ?? "memory://") { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1, lifetime: 1)
            func use() async throws -> GatewayHarness.Answer {
                try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            }
            #expect(try await use().status == 201)
            try await Task.sleep(for: .milliseconds(2500))
            let again = try await use()
            #expect(again.status == 401, "the token is still within exp + skew, and its one use is spent")
            #expect(again.error == "replay_detected")
            #expect(await harness.recorder.count == 1)
        }
    }

    /// Servlet containers strip `;` parameters (`/payments/;` is served as `/payments/`), and
    /// an upstream decodes `%70` into `p`: paths whose meaning differs between the gateway
    /// and the upstream are refused before anything else.
    @Test(arguments: ["/payments/;", "/payments/;x", "/users/;/sessions", "/%70ayments/42", "/payments/%34%32", "/pay%6Dents"])
    func aPathThatAnUpstreamWouldReadDifferentlyIsRefused(path: String) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "GET:/*", limit: 5)
            let answer = try await harness.send(
                client, port: ports.gateways[0], .GET, path,
                headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: "GET", path: path))])
            #expect(answer.status == 400)
            #expect(answer.error == "invalid_request")
            #expect(await harness.recorder.count == 0)
        }
    }
}
