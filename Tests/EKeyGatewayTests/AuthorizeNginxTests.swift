import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOHTTP1
import Testing

/// Verify-only mode behind a real nginx (`auth_request`), configured with exactly the block
/// of docs/authorize.md: nginx forwards to the harness's upstream only what the authorize
/// listener allowed, with the `X-EKey-*` headers it answered, and relays refusals with E-Key's
/// status and challenge.
@Suite struct AuthorizeNginxTests {
    /// Runs the harness with the authorize listener and nginx in front of its upstream.
    static func withNginx(
        nonce: Bool = false, _ body: @escaping (GatewayHarness, Nginx, GatewayHarness.Ports) async throws -> Void
    ) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(nonce: nonce, authorize: AuthorizeListenerTests.loopbackAuthorize) { ports in
            let nginx = try await Self.nginx(files: harness.files, authorizePort: ports.authorizes[0], upstreamPort: ports.upstream)
            defer { nginx.stop() }
            do {
                try await body(harness, nginx, ports)
            } catch {
                throw NginxFailure(description: "\(error)\nnginx error log:\n\(nginx.errorLog)")
            }
        }
    }

    /// The nginx block of docs/authorize.md, exactly as the document shows it.
    static func documentedConfiguration() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: root.appendingPathComponent("docs/authorize.md"), encoding: .utf8)
        guard let begin = document.range(of: "<!-- BEGIN tested nginx config -->\n```nginx\n"),
            let end = document.range(of: "```\n<!-- END tested nginx config -->", range: begin.upperBound..<document.endIndex)
        else { throw NginxFailure(description: "docs/authorize.md has no tested nginx config block") }
        return String(document[begin.upperBound..<end.lowerBound])
    }

    /// nginx with docs/authorize.md's configuration, where only the addresses and the
    /// certificate folder (the harness's `server.crt`, `server.key`, `ca.crt`) are replaced.
    static func nginx(files: TemporaryFiles, authorizePort: Int, upstreamPort: Int) async throws -> Nginx {
        let port = try FreePort.pick()
        var site = try documentedConfiguration()
        for (documented, actual) in [
            ("127.0.0.1:9444", "127.0.0.1:\(authorizePort)"), ("127.0.0.1:8443", "127.0.0.1:\(port)"),
            ("127.0.0.1:3000", "127.0.0.1:\(upstreamPort)"), ("/etc/nginx/ekey/", files.directory.path + "/"),
        ] {
            guard site.contains(documented) else {
                throw NginxFailure(description: "docs/authorize.md's nginx config no longer contains \(documented)")
            }
            site = site.replacingOccurrences(of: documented, with: actual)
        }
        return try await Nginx(site: site, port: port, folder: files.path("nginx"))
    }

    static func dpop(_ harness: GatewayHarness, _ key: PrivateSigningKey, token: String, method: String = "POST", path: String = "/payments", nonce: String? = nil) throws
        -> [(String, String)]
    {
        [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: method, path: path, nonce: nonce))]
    }

    @Test func theDocumentedConfigurationIsTheOneEKeyUpPrints() throws {
        let printed = AuthorizeSnippets.nginx(
            authorize: "127.0.0.1:9444", listen: "127.0.0.1:8443", upstream: "http://127.0.0.1:3000", certificateFolder: "/etc/nginx/ekey")
        #expect(try Self.documentedConfiguration() == printed, "docs/authorize.md and AuthorizeSnippets.nginx must stay the same text")
    }

    @Test func aValidDPoPCallPassesWithTheVerifiedIdentityAndNoCredentials() async throws {
        try await Self.withNginx { harness, nginx, _ in
            let client = try harness.client()
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 2)
            let answer = try await harness.send(
                client, port: nginx.port, .POST, "/payments?amount=5",
                headers: try Self.dpop(harness, key, token: token) + [("X-EKey-Sub", "spiffe://forged"), ("X-Original-URI", "/elsewhere")])
            #expect(answer.status == 201, "\(answer.body)")
            let seen = try #require(await harness.recorder.seen.last)
            #expect(seen.path == "/payments?amount=5")
            #expect(seen.headers["x-ekey-sub"] == [harness.workloadID], "client-sent X-EKey-Sub is replaced")
            #expect(seen.headers["x-ekey-action"] == ["POST:/payments"])
            #expect(seen.headers["x-ekey-use"] == ["1/2"])
            #expect(seen.headers["x-ekey-trace"]?.first?.isEmpty == false)
            #expect(seen.headers["authorization"] == nil && seen.headers["dpop"] == nil, "credentials stop at nginx")
        }
    }

    @Test func refusalsCarryTheGatewayStatusAndChallengeAndNeverReachTheUpstream() async throws {
        try await Self.withNginx { harness, nginx, _ in
            let client = try harness.client()
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 5)
            let headers = try Self.dpop(harness, key, token: token)
            #expect(try await harness.send(client, port: nginx.port, headers: headers).status == 201)
            let before = await harness.recorder.count

            let replay = try await harness.send(client, port: nginx.port, headers: headers)
            #expect(replay.status == 401)
            #expect(replay.challenges == ["DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\""], "replay")

            // The proof names POST; the request is PUT.
            let wrongMethod = try await harness.send(client, port: nginx.port, .PUT, headers: try Self.dpop(harness, key, token: token))
            #expect(wrongMethod.status == 401)
            #expect(wrongMethod.challenges.first?.contains("error=\"invalid_dpop_proof\"") == true, "\(wrongMethod.challenges)")

            // Proofs for the request actually sent, outside the token's capability.
            let getPayments = try await harness.send(client, port: nginx.port, .GET, headers: try Self.dpop(harness, key, token: token, method: "GET"))
            #expect(getPayments.status == 403)
            #expect(getPayments.challenges == ["DPoP error=\"insufficient_scope\", algs=\"ES256 EdDSA\""])
            let otherPath = try await harness.send(client, port: nginx.port, .POST, "/orders", headers: try Self.dpop(harness, key, token: token, path: "/orders"))
            #expect(otherPath.status == 403)

            let expiredToken = try harness.dpopToken(key, lifetime: 30, issuedAt: GatewayHarness.now - 120)
            let expired = try await harness.send(client, port: nginx.port, headers: try Self.dpop(harness, key, token: expiredToken))
            #expect(expired.status == 401)
            #expect(expired.challenges.first?.contains("error=\"invalid_token\"") == true)

            let noProof = try await harness.send(client, port: nginx.port, headers: [("Authorization", "DPoP \(token)")])
            #expect(noProof.status == 401)
            #expect(noProof.challenges.first?.contains("error=\"invalid_dpop_proof\"") == true, "\(noProof.challenges)")

            let noToken = try await harness.send(client, port: nginx.port)
            #expect(noToken.status == 401)
            #expect(noToken.challenges.first?.hasPrefix("DPoP") == true)

            #expect(await harness.recorder.count == before, "the upstream saw no refused request")
            // The refusals counted nothing: the token's remaining uses still pass.
            #expect(try await harness.send(client, port: nginx.port, headers: try Self.dpop(harness, key, token: token)).status == 201)
        }
    }

    @Test func hostilePathsAreRefusedWith400AndNeverForwarded() async throws {
        try await Self.withNginx { harness, nginx, _ in
            let client = try harness.client()
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, action: "POST:/payments/:id", limit: 5)
            for path in ["/payments/%2e%2e", "/payments/a%2Fb", "/payments//x", "/payments/%2E"] {
                let answer = try await harness.send(client, port: nginx.port, .POST, path, headers: try Self.dpop(harness, key, token: token, path: path))
                #expect(answer.status == 400, "\(path)")
            }
            #expect(await harness.recorder.count == 0)
        }
    }

    @Test func aServerNonceRoundTripsThroughNginx() async throws {
        try await Self.withNginx(nonce: true) { harness, nginx, _ in
            let client = try harness.client()
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            let first = try await harness.send(client, port: nginx.port, headers: try Self.dpop(harness, key, token: token))
            #expect(first.status == 401)
            #expect(first.challenges.first?.contains("error=\"use_dpop_nonce\"") == true, "\(first.challenges)")
            let nonce = try #require(first.headers["dpop-nonce"].first, "nginx relays DPoP-Nonce")
            let second = try await harness.send(client, port: nginx.port, headers: try Self.dpop(harness, key, token: token, nonce: nonce))
            #expect(second.status == 201, "\(second.body)")
            #expect(await harness.recorder.count == 1)
        }
    }

    @Test func anMTLSBoundTokenPassesWithTheClientCertificateNginxValidated() async throws {
        try await Self.withNginx { harness, nginx, _ in
            let workload = try harness.client(certificate: "workload")
            let other = try harness.client(certificate: "other")
            let anonymous = try harness.client()
            let token = try harness.mtlsToken(limit: 5)
            let allowed = try await harness.send(workload, port: nginx.port, headers: [("Authorization", "EKey \(token)")])
            #expect(allowed.status == 201, "\(allowed.body)")
            let seen = try #require(await harness.recorder.seen.last)
            #expect(seen.headers["x-ekey-sub"] == [harness.workloadID])
            #expect(seen.headers["x-ekey-use"] == ["1/5"])

            let wrongCertificate = try await harness.send(other, port: nginx.port, headers: [("Authorization", "EKey \(token)")])
            #expect(wrongCertificate.status == 401)
            #expect(wrongCertificate.challenges == ["EKey error=\"invalid_token\""])

            // A client without a certificate forging the headers E-Key trusts from nginx.
            let hash = harness.workloadCertificateSHA256.map { String(format: "%02x", $0) }.joined()
            let pem = try String(contentsOfFile: harness.files.path("workload.crt"), encoding: .utf8)
            let escaped = pem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            for forged in [("X-Forwarded-Client-Cert", "Hash=\(hash)"), ("X-SSL-Client-Cert", escaped)] {
                let answer = try await harness.send(anonymous, port: nginx.port, headers: [("Authorization", "EKey \(token)"), forged])
                #expect(answer.status == 401, "forged \(forged.0) must not bind the token")
            }
            #expect(await harness.recorder.count == 1)
        }
    }
}
