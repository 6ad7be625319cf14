import EKeyProtocol
import EKeyTestSupport
import Foundation
import Testing

/// Interop with an independent implementation, Python's joserfc: what it makes verifies
/// here, and what E-Key makes verifies there. The test command installs joserfc.
struct JoseRFCInteropTests {
    static let script = Bundle.module.url(forResource: "joserfc_interop", withExtension: "py", subdirectory: "Interop")!.path
    let now = Int64(Date().timeIntervalSince1970)
    let url = "https://api.example.com/payments"

    func python(_ command: String, _ request: JSONValue) throws -> JSONValue {
        let output = try ExternalCommand.python([Self.script, command]).run(input: Data(request.serializedBytes()))
        return try StrictJSONParser().parse(Array(output.stdout))
    }

    @Test func joserfcTokensAndProofsVerifyInSwift() throws {
        let made = try python("make", ["now": .integer(now), "issuer": .string(TokenFixture.issuer), "audience": .string(TokenFixture.audience), "url": .string(url)])
        let cases = try #require(made["cases"]?.arrayValue)
        #expect(cases.count == 2)
        for entry in cases {
            let issuerJWK = try JWK(parsing: try #require(entry["issuer_jwk"]), context: .publicOnly)
            let token = try #require(entry["token"]?.stringValue)
            let parsed = try EKeyToken(parsing: token)
            #expect(parsed.keyID == issuerJWK.keyID)
            let verified = try parsed.verify(
                using: issuerJWK.publicKey(), policy: TokenValidationPolicy(issuer: TokenFixture.issuer, audience: TokenFixture.audience), now: now)
            #expect(verified.claims.trace == entry["trace"]?.stringValue)
            #expect(verified.claims.capability.subcapabilities.map(\.description) == ["GET:/payments/:id"])
            guard case .dpop(let jkt) = verified.binding else {
                Issue.record("joserfc token should be DPoP-bound")
                continue
            }
            #expect(jkt == entry["proof_thumbprint"]?.stringValue)
            let proof = try DPoPProofVerifier().verify(
                try #require(entry["proof"]?.stringValue),
                for: .init(method: "POST", url: url, accessToken: token, trace: verified.claims.trace, boundThumbprint: jkt), now: now)
            #expect(proof.jti == entry["proof_jti"]?.stringValue)
            #expect(proof.thumbprint == jkt)
        }
    }

    @Test func swiftTokensAndProofsVerifyInJoserfc() throws {
        var cases: [JSONValue] = []
        var expectations: [(String, EKeyClaims?, String?)] = []
        for algorithm in JWSAlgorithm.allCases {
            var fixture = TokenFixture()
            fixture.issuerKey = PrivateSigningKey(generating: algorithm)
            fixture.proofKey = PrivateSigningKey(generating: algorithm)
            fixture.now = now
            let claims = try fixture.claims()
            let token = try fixture.token(claims)
            let publicJWK = fixture.issuerKey.publicKey.jwk.with(keyID: fixture.keyID, algorithm: algorithm)
            cases.append(["kind": "token", "jws": .string(token), "jwk": publicJWK.jsonValue])
            expectations.append(("token", claims, nil))
            cases.append(["kind": "proof", "jws": .string(try fixture.proof(for: token))])
            expectations.append(("proof", nil, fixture.proofKey.publicKey.jwk.thumbprint))
        }
        let results = try #require(python("verify", ["cases": .array(cases)])["results"]?.arrayValue)
        #expect(results.count == expectations.count)
        for (result, expectation) in zip(results, expectations) {
            #expect(result["ok"] == true, "joserfc refused a Swift-made \(expectation.0): \(result["error"]?.stringValue ?? "")")
            if let claims = expectation.1 {
                #expect(result["payload"] == claims.jsonValue)
                #expect(result["header"]?["bind"] == "DPoP")
                #expect(result["header"]?["typ"] == "EKEY")
            }
            if let thumbprint = expectation.2 {
                #expect(result["thumbprint"]?.stringValue == thumbprint)
                #expect(result["header"]?["typ"] == "dpop+jwt")
            }
        }
    }

    @Test func joserfcRefusesATamperedSwiftToken() throws {
        let fixture = TokenFixture()
        var token = Array(try fixture.token().utf8)
        let index = token.lastIndex(of: UInt8(ascii: "."))! - 3
        token[index] = token[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let publicJWK = fixture.issuerKey.publicKey.jwk.with(keyID: fixture.keyID, algorithm: .es256)
        let results = try python("verify", ["cases": [["kind": "token", "jws": .string(String(decoding: token, as: UTF8.self)), "jwk": publicJWK.jsonValue]]])
        #expect(results["results"]?.arrayValue?.first?["ok"] == false)
    }
}
