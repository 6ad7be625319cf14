import Crypto
import EKeyConfig
@testable import EKeyIssuer
import EKeyProtocol
import Foundation
import Testing

struct PolicyTests {
    @Test func globsMatchAnyRunIncludingSlashAndColon() {
        #expect(Glob("spiffe://example.org/*").matches("spiffe://example.org/a/b:c"))
        #expect(Glob("client:*-bot").matches("client:ci-bot"))
        #expect(!Glob("client:*-bot").matches("client:ci-bots"))
        #expect(Glob("*").matches(""))
        #expect(Glob("a*b*c").matches("a-b-b-c"))
        #expect(!Glob("a*b*c").matches("acb"))
        #expect(Glob("exact").matches("exact"))
        #expect(!Glob("exact").matches("exact2"))
    }

    func policy() throws -> IssuancePolicy {
        try IssuancePolicy(templates: [
            TemplateConfig(
                name: "t", subjects: ["client:*"], audiences: ["https://api"], actions: ["GET:/items/:id", "POST:/files/*"], maxLimit: 2,
                maxTTL: .seconds(20), binds: [.dpop], delegateSubjects: ["user:*"])
        ])
    }

    func request(_ action: String = "GET:/items/7", limit: Int = 1, ttl: Int64? = nil, bind: BindingMode = .dpop, sub: String? = nil) throws
        -> TokenRequest
    {
        TokenRequest(
            audience: "https://api", capability: try Capability(action: CapabilityAction(parsing: action), limit: limit), ttl: ttl, bind: bind,
            subject: sub)
    }

    func reason(_ decision: IssuancePolicy.Decision) -> DenialReason? {
        if case .denied(let reason, _) = decision { return reason }
        return nil
    }

    @Test func decidesEachRuleWithItsReason() throws {
        let policy = try policy()
        guard case .allowed(let allowance) = policy.decide(identity: "client:a", request: try request()) else {
            Issue.record("a concrete instance of a templated action is allowed")
            return
        }
        #expect(allowance.ttl == 20)
        #expect(allowance.subject == "client:a")
        #expect(reason(policy.decide(identity: "spiffe://x", request: try request())) == .unknownIdentity)
        #expect(reason(policy.decide(identity: "client:a", request: try request("GET:/other"))) == .actionNotAllowed)
        #expect(reason(policy.decide(identity: "client:a", request: try request(limit: 3))) == .limitTooHigh)
        #expect(reason(policy.decide(identity: "client:a", request: try request(ttl: 21))) == .ttlTooLong)
        #expect(reason(policy.decide(identity: "client:a", request: try request(bind: .mtls))) == .bindNotAllowed)
        #expect(reason(policy.decide(identity: "client:a", request: try request(sub: "admin"))) == .subjectNotAllowed)
        guard case .allowed(let delegated) = policy.decide(identity: "client:a", request: try request("POST:/files/a/b", sub: "user:42")) else {
            Issue.record("a delegate subject is allowed")
            return
        }
        #expect(delegated.subject == "user:42")
    }

    @Test func maxTTLOver60IsAConfigError() {
        #expect(throws: IssuerSetupError.self) {
            try IssuancePolicy(templates: [TemplateConfig(name: "x", subjects: ["*"], audiences: ["a"], actions: ["GET:/"], maxTTL: .seconds(61), binds: [.dpop])])
        }
    }

    @Test func keyFilesInSEC1PKCS8AndEd25519() throws {
        let p256 = P256Keys.sample
        #expect(try SigningKeyFile.parse(pem: p256.pkcs8).algorithm == .es256)
        #expect(try SigningKeyFile.parse(pem: p256.sec1).algorithm == .es256)
        let ed = try SigningKeyFile.parse(pem: """
            -----BEGIN PRIVATE KEY-----
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
            -----END PRIVATE KEY-----
            """)
        #expect(ed.algorithm == .edDSA)
        #expect(throws: IssuerSetupError.self) { try SigningKeyFile.parse(pem: "garbage") }
    }
}

enum P256Keys {
    struct Sample {
        let pkcs8: String
        let sec1: String
    }

    static var sample: Sample {
        let key = P256.Signing.PrivateKey()
        return Sample(pkcs8: key.pemRepresentation, sec1: sec1PEM(key))
    }

    /// SEC1 `EC PRIVATE KEY` PEM, built from the raw scalar and public point.
    static func sec1PEM(_ key: P256.Signing.PrivateKey) -> String {
        let scalar = Array(key.rawRepresentation)
        let point = Array(key.publicKey.x963Representation)
        var body: [UInt8] = [0x02, 0x01, 0x01, 0x04, 0x20] + scalar
        body += [0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        body += [0xa1, 0x44, 0x03, 0x42, 0x00] + point
        let der: [UInt8] = [0x30, UInt8(body.count)] + body
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN EC PRIVATE KEY-----\n\(base64)\n-----END EC PRIVATE KEY-----\n"
    }
}

