import EKeyProtocol
import EKeyTestSupport
import Foundation
import Testing

/// A deterministic mutational fuzzer over the protocol parsers (fixed seed, bounded
/// iterations; `EKEY_FUZZ_ITERATIONS` runs longer). Properties checked on every input:
/// no crash or hang, every refusal is the parser's typed error, and no mutation of a
/// signed token or proof verifies unless the signed bytes are unchanged.
struct FuzzTests {
    // A JSON number that is integral serialises as an integer, so the property is the
    // stability of the canonical form, not equality of the parsed enum.
    static let iterations = Int(ProcessInfo.processInfo.environment["EKEY_FUZZ_ITERATIONS"] ?? "") ?? 4000

    typealias Generator = SeededGenerator

    static let interesting: [[UInt8]] = [
        "null", "true", "-0", "1e999", "9223372036854775808", "\"\\u0000\"", "\"\\ud800\"", "{}", "[]", "..", "%2e", "%2F", "//", "=", "+", "/",
        String(repeating: "[", count: 64), String(repeating: "{\"a\":", count: 40), "\"alg\":\"none\"", "\"alg\":\"HS256\"", "\"kid\":\"x\",\"kid\":\"y\"",
    ].map { Array($0.utf8) }

    static func mutate(_ input: [UInt8], _ random: inout Generator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<8, using: &random) {
            case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            case 1: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
            case 2 where !bytes.isEmpty: bytes.remove(at: position)
            case 3: bytes = Array(bytes.prefix(position))
            case 4 where bytes.count > 2:
                let end = min(bytes.count, position + Int.random(in: 1...16, using: &random))
                bytes.insert(contentsOf: bytes[position..<end], at: Int.random(in: 0...bytes.count, using: &random))
            case 5: bytes.insert(contentsOf: interesting.randomElement(using: &random)!, at: position)
            case 6 where !bytes.isEmpty: bytes[position] = [0x2E, 0x7B, 0x22, 0x3D, 0x00, 0xFF, 0x2F, 0x25].randomElement(using: &random)!
            default: bytes.append(contentsOf: interesting.randomElement(using: &random)!)
            }
        }
        return bytes
    }

    /// Mutates the decoded JSON of one part of a compact JWS and re-encodes it, so the
    /// fuzzer reaches past base64url into the JSON and claim checks.
    static func mutatePart(_ token: String, _ random: inout Generator) -> String {
        var parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { return token }
        let index = Int.random(in: 0...1, using: &random)
        let decoded = (try? Base64URL.decode(parts[index])) ?? []
        parts[index] = Base64URL.encode(mutate(decoded, &random))
        return parts.joined(separator: ".")
    }

    @Test func base64URLAndJSONParsersOnlyThrowTheirErrors() {
        var random = Generator(seed: 0xE4E5)
        let seeds = [Array("eyJhbGciOiJFUzI1NiJ9".utf8), Array(#"{"a":[1,2,{"b":"c\u00e9"}],"d":-1.5e3,"e":null}"#.utf8)]
        for iteration in 0..<Self.iterations {
            let input = Self.mutate(seeds[iteration % seeds.count], &random)
            if let decoded = try? Base64URL.decode(utf8: input) {
                #expect(Array(Base64URL.encode(decoded).utf8) == input, "strict base64url round-trips: \(input)")
            }
            if let value = try? StrictJSONParser().parse(input) {
                let canonical = value.serialized()
                #expect((try? StrictJSONParser().parse(value.serializedBytes()))?.serialized() == canonical, "the canonical form is stable: \(canonical)")
            }
        }
    }

    @Test func mutatedTokensNeverVerifyWithChangedContent() throws {
        var random = Generator(seed: 0x70C3)
        let issuer = PrivateSigningKey(generating: .es256)
        let proofKey = PrivateSigningKey(generating: .edDSA)
        let now: Int64 = 1_800_000_000
        let claims = EKeyClaims(
            issuer: "https://issuer.test", subject: "spiffe://example.org/a", audience: "https://api.test", issuedAt: now, expiresAt: now + 30,
            capability: try Capability(action: CapabilityAction(parsing: "POST:/payments/:id"), limit: 2),
            confirmation: .jwkThumbprint(proofKey.publicKey.jwk.thumbprint), trace: EKeyClaims.randomTrace())
        let token = try EKeyToken.sign(claims, keyID: "k1", bind: .dpop, using: issuer)
        let signedPart = token.split(separator: ".").prefix(2).joined(separator: ".")
        let policy = TokenValidationPolicy(issuer: "https://issuer.test", audience: "https://api.test")
        for iteration in 0..<Self.iterations {
            let mutated = iteration % 2 == 0 ? String(decoding: Self.mutate(Array(token.utf8), &random), as: UTF8.self) : Self.mutatePart(token, &random)
            do {
                let parsed = try EKeyToken(parsing: mutated)
                _ = try parsed.verify(using: issuer.publicKey, policy: policy, now: now)
                #expect(mutated.split(separator: ".").prefix(2).joined(separator: ".") == signedPart, "only the signed bytes verify: \(mutated)")
            } catch {
                #expect([400, 401].contains(error.status), "refusals are 400/401: \(error)")
            }
        }
    }

    @Test func mutatedProofsNeverVerifyWithChangedContent() throws {
        var random = Generator(seed: 0xD909)
        let key = PrivateSigningKey(generating: .es256)
        let now: Int64 = 1_800_000_000
        let proof = try DPoPProof(method: "POST", url: "https://api.test/payments", issuedAt: now, accessTokenHash: EKeyToken.accessTokenHash("t")).signed(with: key)
        let signedPart = proof.split(separator: ".").prefix(2).joined(separator: ".")
        let verifier = DPoPProofVerifier()
        let request = DPoPProofVerifier.Request(method: "POST", url: "https://api.test/payments", accessToken: "t", boundThumbprint: key.publicKey.jwk.thumbprint)
        for iteration in 0..<Self.iterations {
            let mutated = iteration % 2 == 0 ? String(decoding: Self.mutate(Array(proof.utf8), &random), as: UTF8.self) : Self.mutatePart(proof, &random)
            do {
                _ = try verifier.verify(mutated, for: request, now: now)
                #expect(mutated.split(separator: ".").prefix(2).joined(separator: ".") == signedPart, "only the signed bytes verify: \(mutated)")
            } catch {
                #expect(error.status == 401 || error.status == 400, "refusals are 400/401: \(error)")
            }
        }
    }

    @Test func jwkCapabilityAndPathParsersHoldTheirRules() throws {
        var random = Generator(seed: 0xCA9A)
        let jwk = Array(PrivateSigningKey(generating: .es256).publicKey.jwk.with(keyID: "k", algorithm: .es256).jsonValue.serializedBytes())
        let actions = ["POST:/payments", "GET:/payments/:id", "PUT:/files/*"].map { Array($0.utf8) }
        let paths = ["/payments/42?x=1", "/a/b/c/", "/files/report.pdf"].map { Array($0.utf8) }
        for iteration in 0..<Self.iterations {
            if let value = try? StrictJSONParser().parse(Self.mutate(jwk, &random)), let parsed = try? JWK(parsing: value, context: .publicOnly) {
                #expect(!parsed.isPrivate, "a public-only context never yields private material")
            }
            let action = String(decoding: Self.mutate(actions[iteration % actions.count], &random), as: UTF8.self)
            if let parsed = try? CapabilityAction(parsing: action) {
                let literals = parsed.segments.compactMap { segment -> String? in
                    if case .literal(let value) = segment { return value }
                    return nil
                }
                #expect(!literals.contains { $0 == "." || $0 == ".." } && !parsed.path.contains("//"), "accepted action \(action)")
            }
            let path = String(decoding: Self.mutate(paths[iteration % paths.count], &random), as: UTF8.self)
            if let target = try? RequestTarget(validating: path) {
                let lower = target.path.lowercased()
                #expect(!lower.contains("%2e") && !lower.contains("%2f") && !target.path.contains("//"), "accepted path \(path)")
                #expect(!target.segments.contains { $0 == "." || $0 == ".." }, "accepted path \(path)")
            }
        }
    }
}
