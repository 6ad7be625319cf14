import EKeyProtocol
import Testing

struct JWKTests {
    @Test func publicOnlyContextRefusesPrivateMembers() throws {
        for algorithm in JWSAlgorithm.allCases {
            let privateJWK = PrivateSigningKey(generating: algorithm).jwk
            let error = #expect(throws: JWSError.self) { try JWK(parsing: privateJWK.jsonValue, context: .publicOnly) }
            #expect(error?.kind == .privateKeyMaterial)
            let parsed = try JWK(parsing: privateJWK.jsonValue, context: .allowPrivate)
            #expect(try parsed.privateKey().algorithm == algorithm)
            #expect(!parsed.publicJWK.isPrivate)
        }
    }

    @Test func keysRoundTripThroughJWK() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = PrivateSigningKey(generating: algorithm)
            let restored = try JWK(parsing: key.jwk.jsonValue, context: .allowPrivate).privateKey()
            let token = try JWSCompact.sign(header: [:], payload: [1, 2, 3], using: restored)
            try JWSCompact(parsing: token).verify(using: key.publicKey)
        }
    }

    @Test(arguments: [
        ["kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"],
        ["kty": "EC", "crv": "P-256", "x": "AAAA"],
        ["kty": "EC", "crv": "P-256", "x": .string(Base64URL.encode([UInt8](repeating: 1, count: 32))),
         "y": .string(Base64URL.encode([UInt8](repeating: 2, count: 32)))],
        ["kty": "OKP", "crv": "X25519", "x": .string(Base64URL.encode([UInt8](repeating: 1, count: 32)))],
        ["kty": "OKP", "crv": "Ed25519", "x": .string(Base64URL.encode([UInt8](repeating: 1, count: 31)))],
        ["kty": "oct", "k": "AAAA"],
        ["crv": "P-256"],
        ["kty": 1],
        "not an object",
    ] as [JSONValue])
    func refusesUnusableKeys(jwk: JSONValue) {
        #expect(throws: JWSError.self) { _ = try JWK(parsing: jwk, context: .allowPrivate).publicKey() }
    }

    @Test func refusesADeclaredAlgorithmOfAnotherFamily() throws {
        var members = PrivateSigningKey(generating: .es256).publicKey.jwk.jsonValue.objectValue!
        members["alg"] = "EdDSA"
        let error = #expect(throws: JWSError.self) { try JWK(parsing: .object(members), context: .publicOnly) }
        #expect(error?.kind == .algorithmKeyMismatch)
    }

    @Test func refusesPrivatePartThatDoesNotMatchThePublicPart() throws {
        var members = PrivateSigningKey(generating: .es256).jwk.jsonValue.objectValue!
        members["d"] = PrivateSigningKey(generating: .es256).jwk.jsonValue["d"]
        #expect(throws: JWSError.self) { try JWK(parsing: .object(members), context: .allowPrivate) }
    }

    @Test func jwksSkipsKeysItCannotUseAndKeepsOnlyPublicMembers() throws {
        let good = PrivateSigningKey(generating: .edDSA).publicKey.jwk.with(keyID: "a", algorithm: .edDSA)
        let rsa = Vectors.vector("rfc7638_3_1")["jwk"]!
        let document: JSONValue = ["keys": [good.jsonValue, rsa, ["kty": "oct", "k": "AAAA", "kid": "h"]]]
        let set = try JWKSet(parsing: document.serializedBytes())
        #expect(set.keys == [good])
        #expect(set[keyID: "a"] == good)
        #expect(throws: JWSError.self) { try JWKSet(parsing: Array(#"{"keys":{}}"#.utf8)) }
    }
}
