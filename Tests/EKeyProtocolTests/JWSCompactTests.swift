import Crypto
import EKeyProtocol
import Testing

/// Hostile JWS input: every case must be refused with the right kind.
struct JWSCompactTests {
    let key = PrivateSigningKey(generating: .es256)

    func compact(header: JSONValue, payload: [UInt8] = Array("{}".utf8), signature: [UInt8]? = nil) throws -> String {
        let input = Base64URL.encode(header.serializedBytes()) + "." + Base64URL.encode(payload)
        let signature = try signature ?? key.signature(for: Array(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }

    @Test func signsAndVerifiesBothAlgorithms() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = PrivateSigningKey(generating: algorithm)
            let token = try JWSCompact.sign(header: ["typ": "test"], payload: Array("hello".utf8), using: key)
            let jws = try JWSCompact(parsing: token)
            #expect(jws.algorithm == algorithm)
            try jws.verify(using: key.publicKey)
            let other = PrivateSigningKey(generating: algorithm)
            #expect(throws: JWSError.self) { try jws.verify(using: other.publicKey) }
        }
    }

    @Test(arguments: ["none", "None", "HS256", "HS512", "RS256", "PS256", "ES384", "ES256K", "Ed25519", "es256", ""])
    func refusesAlgorithmsOutsideTheAllowList(alg: String) throws {
        let token = try compact(header: ["alg": .string(alg)])
        let error = #expect(throws: JWSError.self) { try JWSCompact(parsing: token) }
        #expect(error?.kind == .unsupportedAlgorithm)
    }

    @Test func refusesUnsignedNoneTokenWithEmptySignature() {
        let token = Base64URL.encode(JSONValue.object(["alg": "none"]).serializedBytes()) + "." + Base64URL.encode(Array("{}".utf8)) + "."
        #expect(throws: JWSError.self) { try JWSCompact(parsing: token) }
    }

    @Test func refusesHS256SignedWithThePublicKeyBytes() throws {
        // The classic confusion attack: HMAC keyed with the verifier's public key.
        let publicBytes = Array(key.publicKey.jwk.serializedForAttack.utf8)
        let input = Base64URL.encode(JSONValue.object(["alg": "HS256"]).serializedBytes()) + "." + Base64URL.encode(Array("{}".utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: publicBytes))
        let token = input + "." + Base64URL.encode(Array(mac))
        let error = #expect(throws: JWSError.self) { try JWSCompact(parsing: token) }
        #expect(error?.kind == .unsupportedAlgorithm)
    }

    @Test func refusesAlgorithmKeyMismatch() throws {
        let edKey = PrivateSigningKey(generating: .edDSA)
        let token = try JWSCompact.sign(header: [:], payload: [1], using: edKey)
        let jws = try JWSCompact(parsing: token)
        let error = #expect(throws: JWSError.self) { try jws.verify(using: key.publicKey) }
        #expect(error?.kind == .algorithmKeyMismatch)
    }

    @Test func refusesCritAndB64() throws {
        for header: JSONValue in [["alg": "ES256", "crit": ["exp"], "exp": 1], ["alg": "ES256", "b64": false]] {
            let error = #expect(throws: JWSError.self) { try JWSCompact(parsing: try compact(header: header)) }
            #expect(error?.kind == .criticalHeader)
        }
    }

    @Test func refusesDERAndOtherSignatureLengths() throws {
        let input = Base64URL.encode(JSONValue.object(["alg": "ES256"]).serializedBytes()) + "." + Base64URL.encode([1])
        guard case .p256(let p256) = key else { return }
        let der = Array(try p256.signature(for: Array(input.utf8)).derRepresentation)
        for signature in [der, [UInt8](repeating: 1, count: 63), [UInt8](repeating: 1, count: 65), [UInt8](repeating: 1, count: 96)] {
            let error = #expect(throws: JWSError.self) { try JWSCompact(parsing: input + "." + Base64URL.encode(signature)) }
            #expect(error?.kind == .invalidSignature)
        }
    }

    @Test func refusesMalformedStructure() throws {
        let valid = try compact(header: ["alg": "ES256"])
        let parts = valid.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let cases = [
            "", ".", "..", parts[0], parts[0] + "." + parts[1], valid + ".", valid + ".x", "." + parts[1] + "." + parts[2],
            parts[0] + "=." + parts[1] + "." + parts[2], parts[0] + "." + parts[1] + "." + parts[2] + "=",
            parts[0] + "." + parts[1].replacingOccurrences("-", "+") + "+." + parts[2],
            String(parts[0].dropLast()) + "." + parts[1] + "." + parts[2],
            Base64URL.encode(Array("[1]".utf8)) + "." + parts[1] + "." + parts[2],
            Base64URL.encode(Array(#"{"alg":"ES256","alg":"none"}"#.utf8)) + "." + parts[1] + "." + parts[2],
            Base64URL.encode(Array(#"{"alg":["ES256"]}"#.utf8)) + "." + parts[1] + "." + parts[2],
        ]
        for token in cases {
            #expect(throws: JWSError.self, "\(token)") { try JWSCompact(parsing: token) }
        }
    }

    @Test func refusesOversizedBeforeDecoding() throws {
        let big = try compact(header: ["alg": "ES256", "pad": .string(String(repeating: "a", count: 9000))])
        let error = #expect(throws: JWSError.self) { try JWSCompact(parsing: big, maximumLength: 8192) }
        #expect(error?.kind == .malformed)
    }
}

extension JWK {
    /// The public key's JSON, as an attacker would feed it to an HMAC.
    fileprivate var serializedForAttack: String { jsonValue.serialized() }
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, _ replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
