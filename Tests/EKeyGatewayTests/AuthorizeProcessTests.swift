import EKeyProtocol
import EKeyTestSupport
import Foundation
import Testing

/// `gateway.authorize` read from a stack file by a real `ekey-gateway` process: the listener
/// opens, its decisions are audit events with `mode: "authorize"` and count in the gateway's
/// metrics, and a refused call counts no use.
@Suite struct AuthorizeProcessTests {
    @Test func theStackFileTurnsItOnAndDecisionsAreAuditedAndCounted() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run { ports in
            let authorizePort = try FreePort.pick()
            let gateway = try GatewayProcess(
                harness: harness, publisherPort: ports.publisher, upstream: "http://127.0.0.1:\(ports.upstream)",
                extraGatewayYAML: """
                      authorize:
                        listen: 127.0.0.1:\(authorizePort)
                        tls: none
                        trusted_clients: ["127.0.0.1/32"]
                        path_prefix: /check
                    """)
            try await gateway.start()
            try await harness.waitForPort(authorizePort)
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            // The key set may take a moment to arrive: retry, with a fresh proof, while the answer is 401 invalid_token.
            var headers: [(String, String)] = []
            var attempt: GatewayHarness.Answer?
            for _ in 0..<40 where attempt == nil || attempt?.error == "invalid_token" {
                if attempt != nil { try await Task.sleep(for: .milliseconds(250)) }
                headers = [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))]
                attempt = try await AuthorizeListenerTests.plainSend(port: authorizePort, path: "/check/payments", headers: headers)
            }
            let first = try #require(attempt)
            #expect(first.status == 200, "\(first.body)")
            let replay = try await AuthorizeListenerTests.plainSend(port: authorizePort, path: "/check/payments", headers: headers)
            #expect(replay.status == 401)
            #expect(replay.error == "replay_detected")
            #expect(await harness.recorder.count == 0, "the authorize listener forwards nothing")

            let metrics = try await harness.adminGet(port: gateway.adminPort, "/metrics")
            #expect(metrics.contains("ekey_verify_success_total 1"))
            #expect(metrics.contains("ekey_verify_replay_blocked_total 1"))
            let output = await gateway.output { $0.contains("\"outcome\":\"replay_blocked\"") }
            let audit = output.split(separator: "\n").filter { $0.contains("\"label\":\"audit\"") && $0.contains("\"mode\":\"authorize\"") }
            #expect(audit.contains { $0.contains("\"outcome\":\"allowed\"") && $0.contains("\"path\":\"/payments\"") && $0.contains("\"use\":\"1/1\"") }, "\(audit)")
            #expect(audit.contains { $0.contains("\"outcome\":\"replay_blocked\"") }, "\(audit)")
            #expect(!gateway.output.contains(token), "the token is never logged")
            await gateway.stop()
        }
    }
}
