import AsyncHTTPClient
import Crypto
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import NIOHTTP1
import Testing

/// An administrator revokes the issuer's signing key on the publisher: the issuer must not
/// bring it back by re-registering it, and must stop signing with it.
@Suite(.serialized)
struct RevocationTests {
    /// Whether a log line reports the publisher's 410 for `keyID`.
    static func reportsRevocation(_ log: LogSink, of keyID: String) -> Bool {
        log.lines.contains { $0.contains("revoked") && $0.contains(keyID) }
    }

    @Test func aRevokedGeneratedKeyIsReplacedByANewKeyAtTheNextReRegistration() async throws {
        try await IssuerStack.with { stack in try await self.generatedKeyIsReplaced(stack) }
    }

    func generatedKeyIsReplaced(_ stack: IssuerStack) async throws {
        try await stack.startPublisher()
        let workload = try stack.client("workload")
        let log = LogSink.memory()
        // The key manager's clock: each advance by 300 ms is one re-registration.
        let clock = TestClock()
        try await stack.withIssuerInProcess(reRegisterEvery: .milliseconds(300), clock: clock, log: log) { port, adminPort in
            try await stack.waitUntilReady(adminPort: adminPort)
            let tokenURL = "https://localhost:\(port)/token"
            let first = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
            #expect(first.status == 201, "\(first.body)")
            let revokedKid = try #require(first.json["kid"]?.stringValue)
            #expect(try await stack.revoke(revokedKid) == 204)
            try await clock.sleepers(atLeast: 1)
            clock.advance(by: .milliseconds(300))

            // Ask for tokens until one is signed with another key. Once the issuer has logged
            // the publisher's 410, no answer may carry the revoked kid.
            var newKid: String?
            let deadline = ContinuousClock.now + .seconds(15)
            while newKid == nil, ContinuousClock.now < deadline {
                let revocationSeen = Self.reportsRevocation(log, of: revokedKid)
                let reply = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
                switch reply.status {
                case 201:
                    let kid = try #require(reply.json["kid"]?.stringValue)
                    if kid != revokedKid {
                        newKid = kid
                    } else {
                        #expect(!revocationSeen, "a token was signed with the revoked kid after the issuer saw the 410")
                    }
                case 503:
                    #expect(reply.error == "temporarily_unavailable", "\(reply.body)")
                default:
                    Issue.record("unexpected answer \(reply.status): \(reply.body)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let replacement = try #require(newKid, "the issuer still signs with the revoked kid \(revokedKid) 15 s after the revocation")
            #expect(Self.reportsRevocation(log, of: revokedKid), "the 410 is logged, naming the kid")

            // Several re-registration periods later: still the new key, the old one never returns.
            for _ in 0..<8 {
                try await clock.sleepers(atLeast: 1)
                clock.advance(by: .milliseconds(300))
                let reply = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
                #expect(reply.status == 201, "\(reply.body)")
                #expect(reply.json["kid"]?.stringValue == replacement)
            }
            try await clock.sleepers(atLeast: 1)
            let published = try await stack.publishedKeys().keys.compactMap(\.keyID)
            #expect(published.contains(replacement), "\(published)")
            #expect(!published.contains(revokedKid), "the revoked kid stays out of the JWKS: \(published)")
            let token = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
            let verified = try await stack.verifyAgainstPublisher(
                try #require(token.json["token"]?.stringValue), issuer: "https://localhost:\(port)")
            #expect(verified.keyID == replacement)
        }
    }

    @Test func aRevokedKeyFileStopsIssuingNamingTheFileUntilReplaced() async throws {
        try await IssuerStack.with { stack in try await self.keyFileStopsIssuing(stack) }
    }

    func keyFileStopsIssuing(_ stack: IssuerStack) async throws {
        try await stack.startPublisher()
        let keyPath = try stack.files.write("signing.pem", P256.Signing.PrivateKey().pemRepresentation)
        let workload = try stack.client("workload")
        let plain = stack.plainClient()
        let log = LogSink.memory()
        let clock = TestClock()
        let revokedKid = try await stack.withIssuerInProcess(
            signing: "{key_file: signing.pem}", reRegisterEvery: .milliseconds(300), clock: clock, log: log
        ) { port, adminPort in
            try await stack.waitUntilReady(adminPort: adminPort)
            let tokenURL = "https://localhost:\(port)/token"
            let first = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
            #expect(first.status == 201, "\(first.body)")
            let kid = try #require(first.json["kid"]?.stringValue)
            #expect(try await stack.revoke(kid) == 204)
            try await clock.sleepers(atLeast: 1)
            clock.advance(by: .milliseconds(300))  // the next re-registration meets the 410

            var refusal: IssuerStack.Reply?
            let deadline = ContinuousClock.now + .seconds(15)
            while refusal == nil, ContinuousClock.now < deadline {
                let reply = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
                if reply.status == 503 { refusal = reply } else { try await Task.sleep(for: .milliseconds(50)) }
            }
            let refused = try #require(refusal, "the issuer still signs with the revoked key file 15 s after the revocation")
            #expect(refused.error == "temporarily_unavailable")
            let description = refused.json["error_description"]?.stringValue ?? ""
            #expect(description.contains(keyPath) && description.contains("revoked"), "\(description)")
            #expect(log.lines.contains { $0.contains("\"level\":\"error\"") && $0.contains(keyPath) }, "an error naming the file is logged")
            let readiness = try await stack.send(plain, .GET, "http://127.0.0.1:\(adminPort)/readyz")
            #expect(readiness.status == 503)
            #expect(readiness.body.contains("revoked") && readiness.body.contains(keyPath), "\(readiness.body)")
            for _ in 0..<3 {
                try await clock.sleepers(atLeast: 1)
                clock.advance(by: .milliseconds(300))
            }
            try await clock.sleepers(atLeast: 1)
            let later = try await stack.send(workload, .POST, tokenURL, body: IssuerStack.request().serialized())
            #expect(later.status == 503, "issuing stays stopped: \(later.body)")
            return kid
        }
        #expect(!(try await stack.publishedKeys().keys.compactMap(\.keyID).contains(revokedKid)))

        // A restart with the same file does not bring the key back.
        let restarted = try await stack.startIssuer(signing: "{key_file: signing.pem}", waitReady: false)
        var refusal: IssuerStack.Reply?
        let deadline = ContinuousClock.now + .seconds(15)
        while refusal == nil, ContinuousClock.now < deadline {
            let reply = try await stack.token(workload, IssuerStack.request(), index: restarted)
            if reply.status == 201 {
                Issue.record("a restarted issuer signed with the revoked key file")
                break
            }
            if reply.json["error_description"]?.stringValue?.contains(keyPath) == true { refusal = reply }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(refusal?.status == 503, "the restarted issuer names the revoked file: \(refusal?.body ?? "no answer")")
        let readiness = try await stack.send(plain, .GET, "http://127.0.0.1:\(stack.issuers[restarted].adminPort)/readyz")
        #expect(readiness.status == 503)
        #expect(stack.issuers[restarted].process.output.contains(keyPath))
        #expect(!(try await stack.publishedKeys().keys.compactMap(\.keyID).contains(revokedKid)))

        // A replaced file: the issuer becomes ready again with the new key.
        try stack.files.write("replacement.pem", P256.Signing.PrivateKey().pemRepresentation)
        let replaced = try await stack.startIssuer(signing: "{key_file: replacement.pem}")
        let reply = try await stack.token(workload, IssuerStack.request(), index: replaced)
        #expect(reply.status == 201, "\(reply.body)")
        #expect(reply.json["kid"]?.stringValue != revokedKid)
    }
}
