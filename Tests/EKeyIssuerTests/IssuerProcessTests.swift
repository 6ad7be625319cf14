import AsyncHTTPClient
import Crypto
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import NIOHTTP1
import Testing

/// `ekey-issuer` and `ekey-jwks` as real processes with real TLS and HTTP/2 (docs/spec/issuer.md).
@Suite(.serialized)
struct IssuerProcessTests {
    static let responseMembers: Set<String> = ["token", "token_type", "expires_in", "expires_at", "trace", "cnf", "kid"]

    @Test func readinessWaitsForTheKeyRegistrationThenMTLSTokensVerify() async throws {
        let stack = try IssuerStack()
        try await stack.startIssuer(waitReady: false)
        let plain = stack.plainClient()
        let workload = try stack.client("workload")
        let workload1 = try stack.client("workload", http1: true)
        let notReady = try await stack.send(plain, .GET, "http://127.0.0.1:\(stack.issuers[0].adminPort)/readyz")
        #expect(notReady.status == 503, "no publisher yet: \(notReady.body)")
        #expect(notReady.body.contains("signing key"))
        let early = try await stack.token(workload, IssuerStack.request())
        #expect(early.status == 503)
        #expect(early.error == "temporarily_unavailable")

        try await stack.startPublisher()
        try await stack.waitUntilReady(0)

        let reply = try await stack.token(workload, IssuerStack.request(limit: 2))
        #expect(reply.status == 201, "\(reply.body)")
        #expect(reply.version == .http2)
        #expect(Set(reply.json.keys) == Self.responseMembers)
        #expect(reply.json["token_type"]?.stringValue == "EKey")
        #expect(reply.json["expires_in"]?.integerValue == 30, "ttl defaults to the template's max_ttl")
        let expectedX5t = Base64URL.encode(SHA256.hash(data: stack.workload.certificateDER))
        #expect(reply.json["cnf"] == .object(["x5t#S256": .string(expectedX5t)]))
        let token = try #require(reply.json["token"]?.stringValue)
        let verified = try await stack.verifyAgainstPublisher(token)
        #expect(verified.claims.subject == IssuerStack.workloadID)
        #expect(verified.claims.capability.limit == 2)
        #expect(verified.binding == .mtls(certificateSHA256: Array(SHA256.hash(data: stack.workload.certificateDER))))
        #expect(EKeyClaims.isTrace(verified.claims.trace))
        #expect(verified.claims.trace == reply.json["trace"]?.stringValue)
        #expect(verified.keyID == reply.json["kid"]?.stringValue)
        #expect(verified.claims.expiresAt == reply.json["expires_at"]?.integerValue)

        // The same token verifies in an independent JOSE library.
        let jwk = try #require(try await stack.publishedKeys()[keyID: verified.keyID])
        let script = """
            import json, sys, warnings
            warnings.simplefilter("ignore")
            from joserfc import jws
            from joserfc.jwk import ECKey, OKPKey
            from joserfc.jws import JWSRegistry
            from joserfc.registry import HeaderParameter
            d = json.load(sys.stdin)
            registry = JWSRegistry(header_registry={"bind": HeaderParameter("E-Key binding mode", "str")}, algorithms=["ES256", "EdDSA"])
            key = ECKey.import_key(d["jwk"]) if d["jwk"]["kty"] == "EC" else OKPKey.import_key(d["jwk"])
            print(json.loads(jws.deserialize_compact(d["token"], key, registry=registry).payload)["sub"])
            """
        let input = JSONValue.object(["jwk": jwk.jsonValue, "token": .string(token)]).serialized()
        let output = try ExternalCommand.python(["-c", script]).run(input: Data(input.utf8))
        #expect(String(decoding: output.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == IssuerStack.workloadID)

        // HTTP/1.1 is served too; a delegated subject allowed by delegate_subjects is used.
        let delegated = try await stack.token(workload1, IssuerStack.request(extra: ["sub": .string(IssuerStack.workloadID + "/batch")]))
        #expect(delegated.status == 201, "\(delegated.body)")
        #expect(delegated.version == .http1_1)
        let delegatedClaims = try await stack.verifyAgainstPublisher(try #require(delegated.json["token"]?.stringValue)).claims
        #expect(delegatedClaims.subject == IssuerStack.workloadID + "/batch")

        // Metadata (RFC 8414).
        let metadata = try await stack.send(workload, .GET, stack.issuerURL() + "/.well-known/oauth-authorization-server")
        #expect(metadata.status == 200)
        #expect(metadata.json["issuer"]?.stringValue == stack.issuerURL())
        #expect(metadata.json["token_endpoint"]?.stringValue == stack.issuerURL() + "/token")
        #expect(metadata.json["jwks_uri"]?.stringValue == "https://localhost:\(stack.jwksPort)/.well-known/jwks.json")
        #expect(metadata.json["tls_client_certificate_bound_access_tokens"] == .bool(true))
        #expect(metadata.json["dpop_signing_alg_values_supported"] == .array(["ES256", "EdDSA"]))

        let metrics = try await stack.send(plain, .GET, "http://127.0.0.1:\(stack.issuers[0].adminPort)/metrics").body
        #expect(metrics.contains("ekey_issue_count_total{template=\"payments\"} 2"))
        #expect(metrics.contains("ekey_issue_latency_seconds"))
        let log = await stack.issuers[0].process.output { $0.contains("\"outcome\":\"issued\"") }
        #expect(log.contains("\"outcome\":\"issued\""))
        #expect(!log.contains(token), "tokens are never logged")
        try await stack.stopAll()
    }

    @Test func registeredDPoPClientsAndBadProofs() async throws {
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer()
        let anonymous = try stack.client(nil)
        let dpop = IssuerStack.request(bind: "DPoP")

        let proof = try stack.proof(stack.botKey)
        let reply = try await stack.token(anonymous, dpop, proofs: [proof])
        #expect(reply.status == 201, "\(reply.body)")
        #expect(reply.json["token_type"]?.stringValue == "DPoP")
        #expect(reply.json["cnf"] == .object(["jkt": .string(stack.botKey.publicKey.jwk.thumbprint)]))
        let claims = try await stack.verifyAgainstPublisher(try #require(reply.json["token"]?.stringValue)).claims
        #expect(claims.subject == "client:ci-bot")

        let replayed = try await stack.token(anonymous, dpop, proofs: [proof])
        #expect(replayed.status == 401)
        #expect(replayed.error == "invalid_client")
        let cases: [(String, String)] = [
            ("wrong htu", try stack.proof(stack.botKey, url: "https://localhost:1/token")),
            ("old iat", try stack.proof(stack.botKey, issuedAt: IssuerStack.now() - 60)),
            ("another key", try stack.proof(.p256(.init()))),
            ("wrong htm", try stack.proof(stack.botKey, method: "GET")),
            ("not a JWS", "abc.def.ghi"),
        ]
        for (name, bad) in cases {
            let refused = try await stack.token(anonymous, dpop, proofs: [bad])
            #expect(refused.status == 401, "\(name): \(refused.body)")
            #expect(refused.error == "invalid_client", "\(name)")
        }
        let twoProofs = try await stack.token(anonymous, dpop, proofs: [try stack.proof(stack.botKey), try stack.proof(stack.botKey)])
        #expect(twoProofs.status == 400)
        let noAuth = try await stack.token(anonymous, dpop)
        #expect(noAuth.status == 401)
        #expect(noAuth.error == "invalid_client")
        let mtlsWithoutCertificate = try await stack.token(anonymous, IssuerStack.request(bind: "mTLS"), proofs: [try stack.proof(stack.botKey)])
        #expect(mtlsWithoutCertificate.status == 400, "a registered DPoP client cannot get an mTLS-bound token")

        let metrics = try await stack.send(anonymous, .GET, "http://127.0.0.1:\(stack.issuers[0].adminPort)/metrics").body
        #expect(metrics.contains("ekey_issue_denied_total{reason=\"invalid_client\"}"))
        try await stack.stopAll()
    }

    @Test func tokenExchangeWithATestIdP() async throws {
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer()
        let anonymous = try stack.client(nil)
        let holder = PrivateSigningKey.ed25519(.init())
        func exchange(_ subjectToken: String, proof: Bool = true) async throws -> IssuerStack.Reply {
            try await stack.token(
                anonymous, IssuerStack.request(bind: "DPoP", extra: ["subject_token": .string(subjectToken)]),
                proofs: proof ? [try stack.proof(holder)] : [])
        }
        let reply = try await exchange(try stack.subjectToken())
        #expect(reply.status == 201, "\(reply.body)")
        let claims = try await stack.verifyAgainstPublisher(try #require(reply.json["token"]?.stringValue)).claims
        #expect(claims.subject == "oidc:test:acme/app")
        #expect(claims.confirmation == .jwkThumbprint(holder.publicKey.jwk.thumbprint))

        let rsa = try await exchange(try stack.rsaSubjectToken())
        #expect(rsa.status == 201, "an RS256 subject token (GitHub Actions, Google...) is accepted: \(rsa.body)")
        let rsaToken = try await stack.verifyAgainstPublisher(try #require(rsa.json["token"]?.stringValue))
        #expect(rsaToken.claims.subject == "oidc:test:acme/app")
        var forged = try stack.rsaSubjectToken().split(separator: ".").map(String.init)
        forged[1] = Base64URL.encode(Array(#"{"iss":"https://idp.example.test","aud":"https://issuer.example.test","repo":"acme/app","exp":9999999999}"#.utf8))
        for (name, token) in [
            ("RS256 payload swapped", forged.joined(separator: ".")),
            ("RS256 header naming the EC key", try stack.rsaSubjectToken(kid: "idp-1")),
            ("alg none", try stack.rsaSubjectToken(algorithm: "none")),
            ("alg HS256 with the RSA key", try stack.rsaSubjectToken(algorithm: "HS256")),
            ("alg PS256", try stack.rsaSubjectToken(algorithm: "PS256")),
            ("expired", try stack.subjectToken(expiresIn: -60)),
            ("wrong audience", try stack.subjectToken(audience: "https://other.example")),
            ("unknown issuer", try stack.subjectToken(issuer: "https://evil.example")),
        ] {
            let refused = try await exchange(token)
            #expect(refused.status == 401, "\(name): \(refused.body)")
            #expect(refused.error == "invalid_client", "\(name)")
        }
        let otherRepo = try await exchange(try stack.subjectToken(repo: "other/app"))
        #expect(otherRepo.status == 403, "oidc:test:other/app matches no template")
        let withoutProof = try await exchange(try stack.subjectToken(), proof: false)
        #expect(withoutProof.status == 400)
        #expect(withoutProof.error == "invalid_request")
        try await stack.stopAll()
    }

    @Test func policyDenialsAndMalformedRequests() async throws {
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer()
        let workload = try stack.client("workload")
        let stranger = try stack.client("stranger")
        let legacy = try stack.client("legacy")
        let forbidden: [(String, HTTPClient, JSONValue, String)] = [
            ("unknown identity", stranger, IssuerStack.request(), "unknown_identity"),
            ("action outside the template", workload, IssuerStack.request(action: "DELETE:/payments/1"), "action_not_allowed"),
            ("limit over max_limit", workload, IssuerStack.request(limit: 4), "limit_too_high"),
            ("ttl over max_ttl", workload, IssuerStack.request(ttl: 31), "ttl_too_long"),
            ("wrong audience", workload, IssuerStack.request(audience: "https://other.example.com"), "audience_not_allowed"),
            ("bind not allowed", legacy, IssuerStack.request(action: "GET:/reports/1", bind: "DPoP", extra: ["jwk": PrivateSigningKey.p256(.init()).publicKey.jwk.jsonValue]), "bind_not_allowed"),
            ("subject not allowed", workload, IssuerStack.request(extra: ["sub": "spiffe://example.org/admin"]), "subject_not_allowed"),
        ]
        for (name, client, body, reason) in forbidden {
            let reply = try await stack.token(client, body)
            #expect(reply.status == 403, "\(name): \(reply.body)")
            #expect(reply.error == "access_denied", "\(name)")
            #expect(reply.json["token"] == nil)
            #expect(await stack.issuers[0].process.output(contains: "\"reason\":\"\(reason)\""), "\(name) is audited with reason \(reason)")
        }
        // A concrete instance of a templated action is allowed.
        let instance = try await stack.token(workload, IssuerStack.request(action: "GET:/payments/42"))
        #expect(instance.status == 201, "\(instance.body)")

        let privateJWK = PrivateSigningKey.p256(.init()).jwk.jsonValue
        let malformed: [(String, String)] = [
            ("not JSON", "{\"aud\": "),
            ("bad action", IssuerStack.request(action: "POST payments").serialized()),
            ("jwk with d", IssuerStack.request(bind: "DPoP", extra: ["jwk": privateJWK]).serialized()),
            ("limit 0", IssuerStack.request(limit: 0).serialized()),
            ("ttl 61", IssuerStack.request(ttl: 61).serialized()),
        ]
        for (name, body) in malformed {
            let reply = try await stack.send(workload, .POST, stack.issuerURL() + "/token", body: body)
            #expect(reply.status == 400, "\(name): \(reply.body)")
            #expect(reply.error == "invalid_request", "\(name)")
        }
        let metrics = try await stack.send(workload, .GET, "http://127.0.0.1:\(stack.issuers[0].adminPort)/metrics").body
        for reason in ["unknown_identity", "action_not_allowed", "limit_too_high", "ttl_too_long", "audience_not_allowed", "bind_not_allowed", "subject_not_allowed", "invalid_request"] {
            #expect(metrics.contains("ekey_issue_denied_total{reason=\"\(reason)\"}"), "\(reason)")
        }
        #expect(!stack.issuers[0].process.output.contains("spiffe://example.org/admin\",\"token"), "a refused sub never reaches a token")
        try await stack.stopAll()
    }

    /// `POST /token` is answered on the event loop when the body came with the head
    /// (HTTP/2) and in a task otherwise (HTTP/1.1): both must answer alike, field by field.
    @Test func theEventLoopAndTheTaskAnswerTokenRequestsAlike() async throws {
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer()
        let overHTTP2 = try stack.client("workload")
        let overHTTP1 = try stack.client("workload", http1: true)
        let cases: [(String, String)] = [
            ("mTLS token", IssuerStack.request().serialized()),
            ("DPoP token for a jwk", IssuerStack.request(bind: "DPoP", extra: ["jwk": PrivateSigningKey.p256(.init()).publicKey.jwk.jsonValue]).serialized()),
            ("not JSON", "{\"aud\": "),
            ("limit over max_limit", IssuerStack.request(limit: 4).serialized()),
            ("wrong audience", IssuerStack.request(audience: "https://other.example.com").serialized()),
            ("subject_token beside a certificate", IssuerStack.request(extra: ["subject_token": "x.y.z"]).serialized()),
        ]
        for (name, body) in cases {
            let fast = try await stack.send(overHTTP2, .POST, stack.issuerURL() + "/token", body: body)
            let slow = try await stack.send(overHTTP1, .POST, stack.issuerURL() + "/token", body: body)
            #expect(fast.version == .http2 && slow.version == .http1_1, "\(name): the two paths were used")
            #expect(fast.status == slow.status, "\(name): \(fast.body) / \(slow.body)")
            #expect(fast.error == slow.error && fast.json["error_description"] == slow.json["error_description"], "\(name)")
            #expect(Set(fast.json.keys) == Set(slow.json.keys), "\(name): the same members")
            for header in ["content-type", "cache-control", "content-length", "date", "server"] {
                #expect(fast.headers[header].isEmpty == slow.headers[header].isEmpty, "\(name): \(header)")
            }
            #expect(fast.headers["content-type"] == slow.headers["content-type"] && fast.headers["cache-control"] == slow.headers["cache-control"])
            if fast.status == 201, let token = fast.json["token"]?.stringValue {
                #expect(try await stack.verifyAgainstPublisher(token).claims.subject == IssuerStack.workloadID, "\(name): the token verifies")
            }
        }
        let metrics = try await stack.send(overHTTP2, .GET, "http://127.0.0.1:\(stack.issuers[0].adminPort)/metrics").body
        let counted = metrics.components(separatedBy: "\n").filter {
            $0.hasPrefix("ekey_request_seconds_count{") && $0.contains("route=\"/token\"") && $0.contains("status_class=\"2xx\"")
        }
        #expect(counted.count == 1 && counted[0].hasSuffix(" 4"), "both paths count their requests: \(counted)")
        func auditedIssues(_ output: String) -> Int { output.components(separatedBy: "\n").filter { $0.contains("\"event\":\"issue\"") }.count }
        let output = await stack.issuers[0].process.output { auditedIssues($0) >= 2 * cases.count }
        #expect(auditedIssues(output) == 2 * cases.count, "one audit event per request on either path")
        try await stack.stopAll()
    }

    @Test func rateLimitHoldsAcrossTwoIssuersSharingRedis() async throws {
        let redis = try RedisServer()
        defer { redis.shutdown() }
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer(store: redis.url)
        try await stack.startIssuer(store: redis.url)
        let legacy = try stack.client("legacy")
        let body = IssuerStack.request(action: "GET:/reports/1")
        var statuses: [Int] = []
        for index in [0, 1, 0] {
            statuses.append(try await stack.token(legacy, body, index: index).status)
        }
        #expect(statuses == [201, 201, 201])
        let limited = try await stack.token(legacy, body, index: 1)
        #expect(limited.status == 429, "\(limited.body)")
        #expect(limited.error == "rate_limited")
        let retryAfter = try #require(limited.headers.first(name: "retry-after").flatMap(Int.init))
        #expect(retryAfter >= 1 && retryAfter <= 20)
        #expect(await stack.issuers[1].process.output(contains: "\"outcome\":\"rate_limited\""))
        // Another template's bucket is separate.
        let workload = try stack.client("workload")
        #expect(try await stack.token(workload, IssuerStack.request(), index: 1).status == 201)
        try await stack.stopAll()
    }

    @Test func rotationKeepsTokensSignedBeforeTheSwitchVerifiable() async throws {
        let stack = try IssuerStack()
        try await stack.startPublisher()
        try await stack.startIssuer(signing: "{alg: EdDSA, rotate_every: 2s}")
        let workload = try stack.client("workload")
        let first = try await stack.token(workload, IssuerStack.request())
        #expect(first.status == 201, "\(first.body)")
        let firstToken = try #require(first.json["token"]?.stringValue)
        let firstKid = try #require(first.json["kid"]?.stringValue)
        var laterKid = firstKid
        let deadline = ContinuousClock.now + .seconds(10)
        while laterKid == firstKid, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            laterKid = try await stack.token(workload, IssuerStack.request()).json["kid"]?.stringValue ?? firstKid
        }
        #expect(laterKid != firstKid, "the key rotated")
        let published = try await stack.publishedKeys().keys.compactMap(\.keyID)
        #expect(published.contains(firstKid) && published.contains(laterKid), "both keys are published: \(published)")
        let verified = try await stack.verifyAgainstPublisher(firstToken)
        #expect(verified.keyID == firstKid)
        #expect(try EKeyToken(parsing: firstToken).jws.algorithm == .edDSA)
        try await stack.stopAll()
    }
}
