import Crypto
import EKeyProtocol
import Testing

/// The E-Key token (docs/spec/token.md, gateway step 2) under valid and hostile input.
struct EKeyTokenTests {
    let fixture = TokenFixture()

    func verify(_ token: String, key: PublicSigningKey? = nil, now: Int64? = nil) throws -> VerifiedEKey {
        try EKeyToken(parsing: token).verify(using: key ?? fixture.issuerKey.publicKey, policy: fixture.policy, now: now ?? fixture.now)
    }

    func expectCode(_ code: EKeyError.Code, status: Int? = nil, _ token: String, now: Int64? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: EKeyError.self, sourceLocation: sourceLocation) { try verify(token, now: now) }
        #expect(error?.code == code, "\(error?.reason ?? "")", sourceLocation: sourceLocation)
        if let status { #expect(error?.status == status, sourceLocation: sourceLocation) }
    }

    var validHeader: [String: JSONValue] { ["alg": "ES256", "typ": "EKEY", "kid": .string(fixture.keyID), "bind": "DPoP"] }
    var validPayload: [String: JSONValue] { try! fixture.claims().jsonValue.objectValue! }

    @Test func roundTripsBothAlgorithmsAndBindings() throws {
        for algorithm in JWSAlgorithm.allCases {
            var fixture = self.fixture
            fixture.issuerKey = PrivateSigningKey(generating: algorithm)
            let verified = try EKeyToken(parsing: fixture.token()).verify(using: fixture.issuerKey.publicKey, policy: fixture.policy, now: fixture.now)
            #expect(verified.claims == (try fixture.claims()))
            #expect(verified.binding == .dpop(jwkThumbprint: fixture.proofKey.publicKey.jwk.thumbprint))
            #expect(verified.keyID == fixture.keyID)
        }
        let certificateHash = Array(SHA256.hash(data: [1, 2, 3]))
        var claims = try fixture.claims()
        claims.confirmation = .certificateThumbprint(Base64URL.encode(certificateHash))
        #expect(try verify(fixture.token(claims, bind: .mtls)).binding == .mtls(certificateSHA256: certificateHash))
    }

    @Test func acceptsTheLegacyMTLSFormAndTokensWithoutBind() throws {
        let certificateHash = Array(SHA256.hash(data: [9]))
        let hex = certificateHash.map { String(format2: $0) }.joined()
        var payload = validPayload
        payload["cnf"] = ["jkt": .string(hex)]
        var header = validHeader
        header["bind"] = "mTLS"
        #expect(try verify(fixture.rawToken(header: .object(header), payload: .object(payload))).binding == .mtls(certificateSHA256: certificateHash))

        payload["cnf"] = ["jkt": .string(hex.uppercased())]
        expectCode(.invalidToken, try fixture.rawToken(header: .object(header), payload: .object(payload)))

        header["bind"] = nil
        payload["cnf"] = ["x5t#S256": .string(Base64URL.encode(certificateHash))]
        #expect(try verify(fixture.rawToken(header: .object(header), payload: .object(payload))).binding == .mtls(certificateSHA256: certificateHash))
        payload = validPayload
        #expect(try verify(fixture.rawToken(header: .object(header), payload: .object(payload))).binding.mode == .dpop)
    }

    @Test func refusesBindAndCnfThatDisagree() throws {
        var payload = validPayload
        payload["cnf"] = ["x5t#S256": .string(Base64URL.encode(Array(SHA256.hash(data: [1]))))]
        expectCode(.invalidToken, try fixture.rawToken(header: .object(validHeader), payload: .object(payload)))
        payload["cnf"] = ["x5t#S256": "short", "jkt": "both"]
        expectCode(.invalidToken, try fixture.rawToken(header: .object(validHeader), payload: .object(payload)))
        var header = validHeader
        header["bind"] = "Bearer"
        expectCode(.invalidToken, try fixture.rawToken(header: .object(header), payload: .object(validPayload)))
    }

    @Test(arguments: ["typ", "kid"])
    func refusesMissingHeader(member: String) throws {
        var header = validHeader
        header[member] = nil
        expectCode(.invalidToken, try fixture.rawToken(header: .object(header), payload: .object(validPayload)))
    }

    @Test(arguments: ["JWT", "ekey", "dpop+jwt", "at+jwt"])
    func refusesWrongType(typ: String) throws {
        var header = validHeader
        header["typ"] = .string(typ)
        expectCode(.invalidToken, try fixture.rawToken(header: .object(header), payload: .object(validPayload)))
    }

    @Test func refusesAlgNoneAndHMACConfusion() throws {
        var header = validHeader
        header["alg"] = "none"
        let unsigned = Base64URL.encode(JSONValue.object(header).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(validPayload).serializedBytes())
        expectCode(.invalidToken, unsigned + ".")
        expectCode(.invalidToken, unsigned + "." + Base64URL.encode([UInt8](repeating: 0, count: 64)))

        header["alg"] = "HS256"
        let input = Base64URL.encode(JSONValue.object(header).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(validPayload).serializedBytes())
        let macKey = SymmetricKey(data: Array(fixture.issuerKey.publicKey.jwk.jsonValue.serialized().utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: macKey)
        expectCode(.invalidToken, input + "." + Base64URL.encode(Array(mac)))
    }

    @Test func refusesAlgorithmKeyMismatchAndForeignKeys() throws {
        var fixture = self.fixture
        fixture.issuerKey = PrivateSigningKey(generating: .edDSA)
        let edToken = try fixture.token()
        let error = #expect(throws: EKeyError.self) { try verify(edToken) }
        #expect(error?.code == .invalidToken)
        let foreign = try TokenFixture().token()
        expectCode(.invalidToken, foreign)
    }

    @Test(arguments: ["jwk", "jku", "x5u", "x5c"])
    func refusesKeyInjectionHeaders(member: String) throws {
        var header = validHeader
        header[member] = member == "jwk" ? fixture.issuerKey.publicKey.jwk.jsonValue : "https://attacker.example/keys"
        expectCode(.invalidToken, try fixture.rawToken(header: .object(header), payload: .object(validPayload)))
    }

    @Test(arguments: ["iss", "sub", "aud", "iat", "exp", "cap", "cnf", "trace"])
    func refusesMissingClaims(claim: String) throws {
        var payload = validPayload
        payload[claim] = nil
        expectCode(.invalidToken, try fixture.rawToken(header: .object(validHeader), payload: .object(payload)))
    }

    @Test(arguments: [
        ("iss", JSONValue.string("https://evil.example.com")), ("aud", "https://other.example.com"), ("aud", ["https://api.example.com"]),
        ("iat", "1800000000"), ("exp", JSONValue.double(1_800_000_030.5)), ("exp", JSONValue.double(1e20)), ("trace", "ABCDEF0123456789ABCDEF0123456789"),
        ("trace", "abc"), ("cap", ["action": "POST:/payments", "limit": 0]), ("cap", ["action": "POST:payments", "limit": 1]),
        ("cap", ["action": "POST:/payments"]), ("cnf", "jkt"), ("sub", ""),
    ] as [(String, JSONValue)])
    func refusesWrongClaims(claim: String, value: JSONValue) throws {
        var payload = validPayload
        payload[claim] = value
        expectCode(.invalidToken, try fixture.rawToken(header: .object(validHeader), payload: .object(payload)))
    }

    @Test func refusesExpiredTokensBeyondTheSkewOnly() throws {
        let token = try fixture.token()
        #expect(throws: Never.self) { try verify(token, now: fixture.now + 30 + 5) }
        expectCode(.expiredToken, status: 401, token, now: fixture.now + 30 + 6)
    }

    @Test func refusesIssuedInTheFutureBeyondSkew() throws {
        let token = try fixture.token()
        #expect(throws: Never.self) { try verify(token, now: fixture.now - 5) }
        expectCode(.invalidToken, token, now: fixture.now - 6)
    }

    @Test func refusesLifetimesOverSixtySeconds() throws {
        #expect(throws: Never.self) { try verify(fixture.token(fixture.claims(lifetime: 60))) }
        expectCode(.invalidToken, try fixture.token(fixture.claims(lifetime: 61)))
        expectCode(.invalidToken, try fixture.token(fixture.claims(lifetime: 0)))
    }

    @Test func refusesOversizedTokensAsInvalidRequest() throws {
        var payload = validPayload
        payload["pad"] = .string(String(repeating: "x", count: 8200))
        let error = #expect(throws: EKeyError.self) { try EKeyToken(parsing: fixture.rawToken(header: .object(validHeader), payload: .object(payload))) }
        #expect(error?.code == .invalidRequest)
        #expect(error?.status == 400)
    }

    @Test func refusesDuplicateMembersInHeaderAndPayload() throws {
        let header = #"{"alg":"ES256","typ":"EKEY","kid":"issuer-key-1","kid":"other"}"#
        let payload = JSONValue.object(validPayload).serialized().dropLast() + #","sub":"someone-else"}"#
        for (headerText, payloadText) in [(header, JSONValue.object(validPayload).serialized()), (JSONValue.object(validHeader).serialized(), String(payload))] {
            let input = Base64URL.encode(Array(headerText.utf8)) + "." + Base64URL.encode(Array(payloadText.utf8))
            let token = input + "." + Base64URL.encode(try fixture.issuerKey.signature(for: Array(input.utf8)))
            expectCode(.invalidToken, token)
        }
    }

    @Test func refusesBrokenEncodingsAndTruncation() throws {
        let token = try fixture.token()
        let parts = token.split(separator: ".").map(String.init)
        let (header, payload, signature) = (parts[0], parts[1], parts[2])
        let notJSON = Base64URL.encode(Array("not json".utf8))
        let cases: [String] = [
            "\(header).\(payload)", "\(header).\(payload).", "\(header).\(payload).\(signature.dropLast(2))",
            "\(header)==.\(payload).\(signature)", "\(header).\(payload)=.\(signature)",
            "\(token)\n", " \(token)", "\(header).\(signature).\(payload)", "\(payload).\(header).\(signature)",
            "\(token).\(signature)", String(token.dropLast()), "\(header).\(notJSON).\(signature)",
        ]
        for broken in cases {
            let error = #expect(throws: EKeyError.self, "\(broken)") { try verify(broken) }
            #expect(error?.code == .invalidToken)
        }
    }
}

extension String {
    fileprivate init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = hex.count == 1 ? "0" + hex : hex
    }
}
