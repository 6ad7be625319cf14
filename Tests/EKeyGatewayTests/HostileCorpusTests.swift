import AsyncHTTPClient
import Crypto
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// A generated corpus of malformed and malicious tokens, proofs and header combinations,
/// each a mutation of a valid request: truncated, re-encoded, swapped parts, wrong types,
/// huge numbers, unicode tricks, duplicate members, nested JSON bombs, key injection and
/// algorithm confusion. A running gateway must answer every one with a 4xx JSON error and
/// forward none of them.
@Suite(.serialized)
struct HostileCorpusTests {
    /// One hostile request: its headers and request target.
    struct HostileCase: Sendable {
        let name: String
        let headers: [(String, String)]
        var target = "/payments"
    }

    /// Signs the exact header and payload text given (duplicate members and odd numbers
    /// survive, which a JSON encoder would normalise away).
    static func signRaw(header: String, payload: String, key: PrivateSigningKey) throws -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        return input + "." + Base64URL.encode(try key.signature(for: Array(input.utf8)))
    }

    /// A proof with the exact payload text, signed by `key` with its public key in the header.
    static func rawProof(payload: String, key: PrivateSigningKey, header extra: String = "") throws -> String {
        let header = "{\"typ\":\"dpop+jwt\",\"alg\":\"\(key.algorithm.rawValue)\",\"jwk\":\(key.publicKey.jwk.jsonValue.serialized())\(extra)}"
        return try signRaw(header: header, payload: payload, key: key)
    }


    static let base64URLAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    /// Replaces one character that is not the last of its segment (the last may only carry
    /// padding bits, so changing it could leave the decoded bytes as they were).
    static func mutate(_ compact: String, using generator: inout SeededGenerator) -> String {
        var characters = Array(compact)
        let lastOfSegment = Set(characters.indices.filter { $0 == characters.count - 1 || characters[$0 + 1] == "." })
        let candidates = characters.indices.filter { characters[$0] != "." && !lastOfSegment.contains($0) }
        let position = candidates.randomElement(using: &generator)!
        var replacement = characters[position]
        while replacement == characters[position] {
            replacement = base64URLAlphabet.randomElement(using: &generator)!
        }
        characters[position] = replacement
        return String(characters)
    }

    static func corpus(harness: GatewayHarness) throws -> [HostileCase] {
        let key = PrivateSigningKey(generating: .es256)
        let attacker = PrivateSigningKey(generating: .es256)
        let token = try harness.dpopToken(key, limit: 1000)
        let thumbprint = key.publicKey.jwk.thumbprint
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let other = try harness.dpopToken(attacker, limit: 1000)
        let otherParts = other.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let now = GatewayHarness.now
        var generator = SeededGenerator(seed: 0xE6E7)
        var cases: [HostileCase] = []

        func dpop(_ name: String, token: String, proof: String? = nil, target: String = "/payments") throws {
            let proof = try proof ?? harness.proof(key, token: token, path: String(target.prefix { $0 != "?" }))
            cases.append(HostileCase(name: name, headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof)], target: target))
        }
        func withProof(_ name: String, _ proof: String) {
            cases.append(HostileCase(name: name, headers: [("Authorization", "DPoP \(token)"), ("DPoP", proof)]))
        }
        func proofPayload(jti: String = "\"\(DPoPProof.randomJTI())\"", htm: String = "\"POST\"", htu: String = "\"\(GatewayHarness.audience)/payments\"", iat: String? = nil, ath: String? = nil, extra: String = "") -> String {
            "{\"jti\":\(jti),\"htm\":\(htm),\"htu\":\(htu),\"iat\":\(iat ?? String(now)),\"ath\":\(ath ?? "\"\(EKeyToken.accessTokenHash(token))\"")\(extra)}"
        }

        // Tokens cut short, and with one character changed.
        for cut in stride(from: 1, to: token.count, by: max(1, token.count / 40)) {
            try dpop("token truncated to \(cut)", token: String(token.prefix(cut)))
        }
        for index in 0..<40 {
            try dpop("token mutation \(index)", token: mutate(token, using: &generator))
        }
        // Re-encoded tokens.
        let reencodings: [(String, String)] = [
            ("padding on every part", parts.map { $0 + "==" }.joined(separator: ".")),
            ("padding on the signature", parts[0] + "." + parts[1] + "." + parts[2] + "="),
            ("standard base64 alphabet", token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+/"),
            ("upper-cased", token.uppercased()),
            ("lower-cased", token.lowercased()),
            ("space inside", parts[0] + ". " + parts[1] + "." + parts[2]),
            ("tab inside", parts[0] + ".\t" + parts[1] + "." + parts[2]),
            ("percent-encoded dots", parts.joined(separator: "%2E")),
            ("fullwidth dots", parts.joined(separator: "\u{FF0E}")),
            ("double dot", parts[0] + ".." + parts[1] + "." + parts[2]),
            ("leading dot", "." + token),
            ("trailing dot", token + "."),
            ("four parts", token + ".AAAA"),
            ("five parts (JWE shape)", token + ".AAAA.BBBB"),
            ("two parts", parts[0] + "." + parts[1]),
            ("empty signature", parts[0] + "." + parts[1] + "."),
            ("only dots", ".."),
            ("JSON instead of base64", "{\"alg\":\"none\"}.{}.x"),
            ("base64 of the payload twice", parts[0] + "." + Base64URL.encode(Array(parts[1].utf8)) + "." + parts[2]),
            ("zero-width space inside", parts[0] + ".\u{200B}" + parts[1] + "." + parts[2]),
        ]
        for (name, mutated) in reencodings {
            try dpop("token re-encoded: \(name)", token: mutated)
        }
        // Parts swapped between the token, another token and a proof.
        let proofParts = try harness.proof(key, token: token).split(separator: ".").map(String.init)
        let swaps: [(String, String)] = [
            ("header and payload swapped", parts[1] + "." + parts[0] + "." + parts[2]),
            ("signature of another token", parts[0] + "." + parts[1] + "." + otherParts[2]),
            ("payload of another token", parts[0] + "." + otherParts[1] + "." + parts[2]),
            ("proof sent as the token", proofParts.joined(separator: ".")),
            ("token header with the proof's payload", parts[0] + "." + proofParts[1] + "." + parts[2]),
            ("proof header with the token's payload", proofParts[0] + "." + parts[1] + "." + proofParts[2]),
            ("signature repeated", parts[0] + "." + parts[1] + "." + parts[2] + parts[2]),
        ]
        for (name, mutated) in swaps {
            try dpop("token parts: \(name)", token: mutated)
        }

        // Tokens signed with the real issuer key whose header or claims are wrong:
        // the checks after the signature must still refuse them.
        let header = "{\"typ\":\"ekey+jwt\",\"kid\":\"\(harness.keyID)\",\"bind\":\"dpop\",\"alg\":\"ES256\"}"
        let capability = "{\"action\":\"POST:/payments\",\"limit\":5}"
        func claims(iss: String = "\"\(GatewayHarness.issuer)\"", sub: String = "\"\(harness.workloadID)\"", aud: String = "\"\(GatewayHarness.audience)\"", iat: String? = nil, exp: String? = nil, cap: String = capability, trace: String = "\"\(EKeyClaims.randomTrace())\"", cnf: String = "{\"jkt\":\"\(thumbprint)\"}", extra: String = "") -> String {
            "{\"iss\":\(iss),\"sub\":\(sub),\"aud\":\(aud),\"iat\":\(iat ?? String(now)),\"exp\":\(exp ?? String(now + 30)),\"cap\":\(cap),\"trace\":\(trace),\"cnf\":\(cnf)\(extra)}"
        }
        func signed(_ name: String, header: String = header, payload: String, by signer: PrivateSigningKey = harness.signingKey) throws {
            try dpop("signed token: \(name)", token: signRaw(header: header, payload: payload, key: signer))
        }
        let nested = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        let headers: [(String, String)] = [
            ("typ missing", "{\"kid\":\"\(harness.keyID)\",\"bind\":\"dpop\",\"alg\":\"ES256\"}"),
            ("typ JWT", header.replacingOccurrences(of: "ekey+jwt", with: "JWT")),
            ("typ dpop+jwt", header.replacingOccurrences(of: "ekey+jwt", with: "dpop+jwt")),
            ("typ upper case", header.replacingOccurrences(of: "ekey+jwt", with: "EKEY+JWT")),
            ("typ a number", header.replacingOccurrences(of: "\"ekey+jwt\"", with: "1")),
            ("alg none", header.replacingOccurrences(of: "\"ES256\"", with: "\"none\"")),
            ("alg HS256", header.replacingOccurrences(of: "\"ES256\"", with: "\"HS256\"")),
            ("alg ES384", header.replacingOccurrences(of: "\"ES256\"", with: "\"ES384\"")),
            ("alg RS256", header.replacingOccurrences(of: "\"ES256\"", with: "\"RS256\"")),
            ("alg lower case", header.replacingOccurrences(of: "\"ES256\"", with: "\"es256\"")),
            ("alg an array", header.replacingOccurrences(of: "\"ES256\"", with: "[\"ES256\"]")),
            ("kid missing", "{\"typ\":\"ekey+jwt\",\"bind\":\"dpop\",\"alg\":\"ES256\"}"),
            ("kid unknown", header.replacingOccurrences(of: harness.keyID, with: "issuer-2")),
            ("kid a path", header.replacingOccurrences(of: harness.keyID, with: "../../etc/passwd")),
            ("kid with unicode look-alike", header.replacingOccurrences(of: harness.keyID, with: "issuer\u{2010}1")),
            ("kid a number", header.replacingOccurrences(of: "\"\(harness.keyID)\"", with: "1")),
            ("kid null", header.replacingOccurrences(of: "\"\(harness.keyID)\"", with: "null")),
            ("kid very long", header.replacingOccurrences(of: harness.keyID, with: String(repeating: "k", count: 4000))),
            ("bind missing", "{\"typ\":\"ekey+jwt\",\"kid\":\"\(harness.keyID)\",\"alg\":\"ES256\"}"),
            ("bind unknown", header.replacingOccurrences(of: "\"dpop\"", with: "\"none\"")),
            ("bind mtls for a jkt", header.replacingOccurrences(of: "\"dpop\"", with: "\"mtls\"")),
            ("bind a number", header.replacingOccurrences(of: "\"dpop\"", with: "7")),
            ("crit names exp", header.replacingOccurrences(of: "}", with: ",\"crit\":[\"exp\"]}")),
            ("duplicate alg member", header.replacingOccurrences(of: "}", with: ",\"alg\":\"none\"}")),
            ("duplicate kid member", header.replacingOccurrences(of: "}", with: ",\"kid\":\"issuer-2\"}")),
            ("header is an array", "[\"ES256\"]"),
            ("header is a string", "\"ES256\""),
            ("header nested bomb", header.replacingOccurrences(of: "}", with: ",\"x\":\(nested)}")),
            ("header with a NUL escape", header.replacingOccurrences(of: "ekey+jwt", with: "ekey+jwt\\u0000")),
            ("header not UTF-8 text", "{\"typ\":\"\u{FFFD}\"}"),
        ]
        for (name, text) in headers {
            try signed(name, header: text, payload: claims())
        }
        let claimCases: [(String, String)] = [
            ("iss a number", claims(iss: "1")),
            ("iss null", claims(iss: "null")),
            ("iss an array", claims(iss: "[\"\(GatewayHarness.issuer)\"]")),
            ("iss with a trailing slash", claims(iss: "\"\(GatewayHarness.issuer)/\"")),
            ("iss with a Cyrillic look-alike", claims(iss: "\"https://issuer.t\u{0435}st\"")),
            ("sub a number", claims(sub: "42")),
            ("sub an object", claims(sub: "{}")),
            ("aud an array", claims(aud: "[\"\(GatewayHarness.audience)\",\"https://other.test\"]")),
            ("aud another API", claims(aud: "\"https://other.test\"")),
            ("aud upper case", claims(aud: "\"\(GatewayHarness.audience.uppercased())\"")),
            ("aud with a fullwidth letter", claims(aud: "\"https://api.\u{FF54}est\"")),
            ("aud a number", claims(aud: "7")),
            ("exp a string", claims(exp: "\"\(now + 30)\"")),
            ("exp a fraction", claims(exp: "\(now + 30).5")),
            ("exp negative", claims(exp: "-1")),
            ("exp zero", claims(exp: "0")),
            ("exp 1e300", claims(exp: "1e300")),
            ("exp beyond Int64", claims(exp: "99999999999999999999999")),
            ("exp in the past", claims(iat: String(now - 100), exp: String(now - 70))),
            ("exp before iat", claims(exp: String(now - 1))),
            ("lifetime over the maximum", claims(exp: String(now + 100_000))),
            ("iat a string", claims(iat: "\"\(now)\"")),
            ("iat in the future", claims(iat: String(now + 3600), exp: String(now + 3630))),
            ("iat negative", claims(iat: "-5")),
            ("iat true", claims(iat: "true")),
            ("cap a string", claims(cap: "\"POST:/payments\"")),
            ("cap an array", claims(cap: "[\(capability)]")),
            ("cap null", claims(cap: "null")),
            ("cap without action", claims(cap: "{\"limit\":5}")),
            ("cap without limit", claims(cap: "{\"action\":\"POST:/payments\"}")),
            ("cap action a number", claims(cap: "{\"action\":7,\"limit\":5}")),
            ("cap action without method", claims(cap: "{\"action\":\"/payments\",\"limit\":5}")),
            ("cap action with a NUL", claims(cap: "{\"action\":\"POST:/payments\\u0000\",\"limit\":5}")),
            ("cap action with a fullwidth slash", claims(cap: "{\"action\":\"POST:\u{FF0F}payments\",\"limit\":5}")),
            ("cap action with dot segments", claims(cap: "{\"action\":\"POST:/x/../payments\",\"limit\":5}")),
            ("cap action with a right-to-left override", claims(cap: "{\"action\":\"POST:/\u{202E}stnemyap\",\"limit\":5}")),
            ("cap limit zero", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":0}")),
            ("cap limit negative", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":-1}")),
            ("cap limit 2^63", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":9223372036854775808}")),
            ("cap limit 1e20", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":1e20}")),
            ("cap limit a string", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":\"5\"}")),
            ("cap limit a fraction", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":1.5}")),
            ("cap limit true", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":true}")),
            ("cap subcap a string", claims(cap: "{\"action\":\"POST:/payments\",\"limit\":5,\"subcap\":\"GET:/x\"}")),
            ("cap duplicate action member", claims(cap: "{\"action\":\"GET:/other\",\"limit\":5,\"action\":\"POST:/payments\"}")),
            ("trace a number", claims(trace: "12345")),
            ("trace empty", claims(trace: "\"\"")),
            ("trace missing", "{\"iss\":\"\(GatewayHarness.issuer)\",\"sub\":\"\(harness.workloadID)\",\"aud\":\"\(GatewayHarness.audience)\",\"iat\":\(now),\"exp\":\(now + 30),\"cap\":\(capability),\"cnf\":{\"jkt\":\"\(thumbprint)\"}}"),
            ("cnf missing", "{\"iss\":\"\(GatewayHarness.issuer)\",\"sub\":\"\(harness.workloadID)\",\"aud\":\"\(GatewayHarness.audience)\",\"iat\":\(now),\"exp\":\(now + 30),\"cap\":\(capability),\"trace\":\"\(EKeyClaims.randomTrace())\"}"),
            ("cnf empty", claims(cnf: "{}")),
            ("cnf jkt a number", claims(cnf: "{\"jkt\":1}")),
            ("cnf jkt of another key", claims(cnf: "{\"jkt\":\"\(attacker.publicKey.jwk.thumbprint)\"}")),
            ("cnf with jkt and x5t#S256", claims(cnf: "{\"jkt\":\"\(thumbprint)\",\"x5t#S256\":\"\(thumbprint)\"}")),
            ("cnf x5t#S256 for a dpop binding", claims(cnf: "{\"x5t#S256\":\"\(thumbprint)\"}")),
            ("cnf a string", claims(cnf: "\"\(thumbprint)\"")),
            ("duplicate exp member", claims(extra: ",\"exp\":\(now - 100)")),
            ("duplicate aud member", claims(extra: ",\"aud\":\"https://other.test\"")),
            ("duplicate cnf member", claims(extra: ",\"cnf\":{\"jkt\":\"\(attacker.publicKey.jwk.thumbprint)\"}")),
            ("nested array bomb", claims(extra: ",\"x\":\(nested)")),
            ("nested object bomb", claims(extra: ",\"x\":" + String(repeating: "{\"a\":", count: 1200) + "1" + String(repeating: "}", count: 1200))),
            ("payload is an array", "[\(claims())]"),
            ("payload is a number", "1"),
            ("payload with trailing garbage", claims() + "x"),
            ("payload with a lone surrogate escape", claims(extra: ",\"x\":\"\\ud800\"")),
            ("payload with an unescaped control character", claims(extra: ",\"x\":\"a\u{01}b\"")),
            ("payload with a comment", claims().replacingOccurrences(of: "{\"iss\"", with: "{/*c*/\"iss\"")),
            ("payload with single quotes", claims().replacingOccurrences(of: "\"sub\"", with: "'sub'")),
        ]
        for (name, payload) in claimCases {
            try signed(name, payload: payload)
        }
        // Key injection: the attacker signs and names its own key in the header.
        let injected = attacker.publicKey.jwk.jsonValue.serialized()
        try signed("key injection through jwk", header: header.replacingOccurrences(of: "}", with: ",\"jwk\":\(injected)}"), payload: claims(), by: attacker)
        try signed("key injection through jku", header: header.replacingOccurrences(of: "}", with: ",\"jku\":\"https://evil.test/jwks\"}"), payload: claims(), by: attacker)
        try signed("key injection through x5u", header: header.replacingOccurrences(of: "}", with: ",\"x5u\":\"https://evil.test/cert\"}"), payload: claims(), by: attacker)
        try signed("attacker key with the real kid", payload: claims(), by: attacker)
        // HMAC with the issuer's public key as the secret (algorithm confusion).
        let hmacHeader = header.replacingOccurrences(of: "\"ES256\"", with: "\"HS256\"")
        let hmacInput = Base64URL.encode(Array(hmacHeader.utf8)) + "." + Base64URL.encode(Array(claims().utf8))
        for (name, secret) in [
            ("JWK text", Array(harness.signingKey.publicKey.jwk.jsonValue.serialized().utf8)),
            ("thumbprint", Array(harness.signingKey.publicKey.jwk.thumbprint.utf8)),
        ] {
            let mac = HMAC<SHA256>.authenticationCode(for: Array(hmacInput.utf8), using: SymmetricKey(data: secret))
            try dpop("HS256 signed with the issuer's public \(name)", token: hmacInput + "." + Base64URL.encode(Array(mac)))
        }

        // Proofs: cut short, one character changed, and wrong in every member.
        let goodProof = try harness.proof(key, token: token)
        for cut in stride(from: 1, to: goodProof.count, by: max(1, goodProof.count / 30)) {
            withProof("proof truncated to \(cut)", String(goodProof.prefix(cut)))
        }
        for index in 0..<30 {
            withProof("proof mutation \(index)", mutate(try harness.proof(key, token: token), using: &generator))
        }
        let proofCases: [(String, String)] = [
            ("htm lower case", proofPayload(htm: "\"post\"")),
            ("htm an array", proofPayload(htm: "[\"POST\"]")),
            ("htu with dot segments", proofPayload(htu: "\"\(GatewayHarness.audience)/x/../payments\"")),
            ("htu percent-encoded path", proofPayload(htu: "\"\(GatewayHarness.audience)/%70ayments\"")),
            ("htu another host", proofPayload(htu: "\"https://evil.test/payments\"")),
            ("htu http scheme", proofPayload(htu: "\"http://api.test/payments\"")),
            ("htu with user info", proofPayload(htu: "\"https://user@api.test/payments\"")),
            ("htu with a fullwidth host letter", proofPayload(htu: "\"https://api.\u{FF54}est/payments\"")),
            ("htu a number", proofPayload(htu: "1")),
            ("iat a string", proofPayload(iat: "\"\(now)\"")),
            ("iat a fraction", proofPayload(iat: "\(now).25")),
            ("iat 1e300", proofPayload(iat: "1e300")),
            ("iat beyond Int64", proofPayload(iat: "99999999999999999999999")),
            ("iat negative", proofPayload(iat: "-1")),
            ("jti empty", proofPayload(jti: "\"\"")),
            ("jti a number", proofPayload(jti: "7")),
            ("jti null", proofPayload(jti: "null")),
            ("ath a number", proofPayload(ath: "1")),
            ("ath of another token", proofPayload(ath: "\"\(EKeyToken.accessTokenHash(other))\"")),
            ("ath empty", proofPayload(ath: "\"\"")),
            ("duplicate htm member", proofPayload(extra: ",\"htm\":\"GET\"")),
            ("duplicate ath member", proofPayload(extra: ",\"ath\":\"x\"")),
            ("nested bomb in the payload", proofPayload(extra: ",\"x\":\(nested)")),
            ("payload an array", "[" + proofPayload() + "]"),
            ("payload with trailing garbage", proofPayload() + "}"),
        ]
        for (name, payload) in proofCases {
            withProof("proof: \(name)", try rawProof(payload: payload, key: key))
        }
        let jwk = key.publicKey.jwk.jsonValue.objectValue!
        func proofHeader(_ name: String, _ edit: (inout [String: JSONValue]) -> Void) throws {
            var members: [String: JSONValue] = ["typ": "dpop+jwt", "alg": "ES256", "jwk": .object(jwk)]
            edit(&members)
            withProof("proof header: \(name)", try signRaw(header: JSONValue.object(members).serialized(), payload: proofPayload(), key: key))
        }
        try proofHeader("jwk with a private d") { $0["jwk"] = key.jwk.jsonValue }
        try proofHeader("jwk kty oct") { $0["jwk"] = ["kty": "oct", "k": "c2VjcmV0"] }
        try proofHeader("jwk crv P-384") { members in
            var changed = jwk
            changed["crv"] = "P-384"
            members["jwk"] = .object(changed)
        }
        try proofHeader("jwk point not on the curve") { members in
            var changed = jwk
            changed["y"] = .string(Base64URL.encode([UInt8](repeating: 1, count: 32)))
            members["jwk"] = .object(changed)
        }
        try proofHeader("jwk x too long") { members in
            var changed = jwk
            changed["x"] = .string(Base64URL.encode([UInt8](repeating: 7, count: 4096)))
            members["jwk"] = .object(changed)
        }
        try proofHeader("jwk a string") { $0["jwk"] = .string(Base64URL.encode(Array(JSONValue.object(jwk).serialized().utf8))) }
        try proofHeader("jwk of the attacker") { $0["jwk"] = attacker.publicKey.jwk.jsonValue }
        try proofHeader("typ jwt") { $0["typ"] = "jwt" }
        try proofHeader("typ application/dpop+jwt") { $0["typ"] = "application/dpop+jwt" }
        try proofHeader("alg ES256K") { $0["alg"] = "ES256K" }
        try proofHeader("alg none") { $0["alg"] = "none" }
        try proofHeader("alg null") { $0["alg"] = .null }
        try proofHeader("kid instead of jwk") { $0["jwk"] = nil; $0["kid"] = "issuer-1" }
        try proofHeader("jku instead of jwk") { $0["jwk"] = nil; $0["jku"] = "https://evil.test/jwks" }
        let hsProofHeader = "{\"typ\":\"dpop+jwt\",\"alg\":\"HS256\",\"jwk\":\(JSONValue.object(jwk).serialized())}"
        let hsInput = Base64URL.encode(Array(hsProofHeader.utf8)) + "." + Base64URL.encode(Array(proofPayload().utf8))
        let hsMAC = HMAC<SHA256>.authenticationCode(for: Array(hsInput.utf8), using: SymmetricKey(data: Array(JSONValue.object(jwk).serialized().utf8)))
        withProof("proof HS256 keyed with its own jwk", hsInput + "." + Base64URL.encode(Array(hsMAC)))

        // Header combinations around a valid token and proof.
        let proof = { try harness.proof(key, token: token) }
        let combinations: [(String, [(String, String)])] = [
            ("no headers", []),
            ("only a proof", [("DPoP", try proof())]),
            ("scheme without a token", [("Authorization", "DPoP"), ("DPoP", try proof())]),
            ("scheme and a space", [("Authorization", "DPoP "), ("DPoP", try proof())]),
            ("Basic scheme", [("Authorization", "Basic dXNlcjpwYXNz"), ("DPoP", try proof())]),
            ("unknown scheme", [("Authorization", "Token \(token)"), ("DPoP", try proof())]),
            ("Bearer downgrade", [("Authorization", "Bearer \(token)"), ("DPoP", try proof())]),
            ("two Authorization headers", [("Authorization", "DPoP \(token)"), ("Authorization", "DPoP \(token)"), ("DPoP", try proof())]),
            ("token then garbage", [("Authorization", "DPoP \(token) extra"), ("DPoP", try proof())]),
            ("two tokens in one header", [("Authorization", "DPoP \(token), DPoP \(token)"), ("DPoP", try proof())]),
            ("empty DPoP header", [("Authorization", "DPoP \(token)"), ("DPoP", "")]),
            ("two proofs joined by a comma", [("Authorization", "DPoP \(token)"), ("DPoP", try proof() + ", " + proof())]),
            ("two DPoP headers", [("Authorization", "DPoP \(token)"), ("DPoP", try proof()), ("DPoP", try proof())]),
            ("token in the DPoP header", [("Authorization", "DPoP \(token)"), ("DPoP", token)]),
            ("proof in Authorization", [("Authorization", "DPoP \(try proof())"), ("DPoP", try proof())]),
            ("token over 8 KiB", [("Authorization", "DPoP " + token + String(repeating: "A", count: 8_200)), ("DPoP", try proof())]),
            ("proof over 8 KiB", [("Authorization", "DPoP \(token)"), ("DPoP", try proof() + String(repeating: "A", count: 8_200))]),
            ("client-sent X-EKey headers and no token", [("X-EKey-Sub", harness.workloadID), ("X-EKey-Use", "1/1")]),
        ]
        for (name, headers) in combinations {
            cases.append(HostileCase(name: "headers: \(name)", headers: headers))
        }
        // Path tricks with a token and a proof made for exactly that path.
        for target in ["/payments/../payments", "/x/../payments", "/%2e%2e/payments", "/payments/%2e", "/payments%2F", "/payments%2f..%2fadmin", "//payments", "/./payments", "/payments/.", "/PAYMENTS", "/payments%00", "/payments/..;/admin", "/%70ayments"] {
            try dpop("path trick \(target)", token: token, target: target)
        }
        return cases
    }

    @Test func everyHostileRequestGetsA4xxJSONErrorAndNothingIsForwarded() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        try await harness.run { ports in
            let corpus = try Self.corpus(harness: harness)
            #expect(corpus.count >= 300, "the corpus holds \(corpus.count) cases")
            var statuses: [Int: Int] = [:]
            for hostile in corpus {
                let answer: GatewayHarness.Answer
                do {
                    answer = try await harness.send(client, port: ports.gateways[0], .POST, hostile.target, headers: hostile.headers, body: ByteBuffer(string: "{}"))
                } catch {
                    Issue.record("\(hostile.name): no answer (\(error))")
                    continue
                }
                statuses[answer.status, default: 0] += 1
                #expect((400..<500).contains(answer.status), "\(hostile.name): \(answer.status) \(answer.body)")
                #expect(answer.error != nil, "\(hostile.name): the body is a JSON error: \(answer.body)")
            }
            #expect(await harness.recorder.count == 0, "no hostile request reaches the upstream")
            let valid = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(valid)
            let answer = try await harness.send(client, port: ports.gateways[0], headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(valid, token: token))], body: ByteBuffer(string: "{}"))
            #expect(answer.status == 201, "a valid request still passes after the corpus: \(answer.body)")
            print("hostile corpus: \(corpus.count) requests, statuses \(statuses.sorted { $0.key < $1.key })")
        }
    }
}
