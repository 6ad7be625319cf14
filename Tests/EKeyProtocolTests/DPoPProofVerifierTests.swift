@testable import EKeyProtocol
import Testing

/// DPoP proofs at the gateway (docs/spec/gateway.md step 3), valid and hostile.
struct DPoPProofVerifierTests {
    let fixture = TokenFixture()
    let url = "https://api.example.com/payments"

    func expectRefused(
        _ proof: String, request: DPoPProofVerifier.Request, now: Int64? = nil,
        policy: DPoPProofVerifier.Policy = .init(), code: EKeyError.Code = .invalidProof,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let error = #expect(throws: EKeyError.self, sourceLocation: sourceLocation) {
            try DPoPProofVerifier(policy: policy).verify(proof, for: request, now: now ?? fixture.now)
        }
        #expect(error?.code == code, "\(error?.reason ?? "")", sourceLocation: sourceLocation)
    }

    func rawProof(header: [String: JSONValue], claims: [String: JSONValue], key: PrivateSigningKey? = nil) throws -> String {
        let key = key ?? fixture.proofKey
        let input = Base64URL.encode(JSONValue.object(header).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(claims).serializedBytes())
        return input + "." + Base64URL.encode(try key.signature(for: Array(input.utf8)))
    }

    func validParts(token: String) -> ([String: JSONValue], [String: JSONValue]) {
        (
            ["typ": "dpop+jwt", "alg": "ES256", "jwk": fixture.proofKey.publicKey.jwk.jsonValue],
            ["jti": "j-1", "htm": "POST", "htu": .string(url), "iat": .integer(fixture.now), "ath": .string(EKeyToken.accessTokenHash(token))]
        )
    }

    @Test func acceptsAValidProofForBothAlgorithms() throws {
        for algorithm in JWSAlgorithm.allCases {
            var fixture = self.fixture
            fixture.proofKey = PrivateSigningKey(generating: algorithm)
            let token = try fixture.token()
            let verified = try DPoPProofVerifier().verify(fixture.proof(for: token), for: fixture.proofRequest(token: token), now: fixture.now)
            #expect(verified.thumbprint == fixture.proofKey.publicKey.jwk.thumbprint)
        }
    }

    @Test func comparesHTUBySchemeHostPortAndPathOnly() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        for htu in ["HTTPS://API.example.COM/payments", "https://api.example.com:443/payments", "https://api.example.com/payments?x=1",
                    "https://api.example.com/payments#frag"] {
            #expect(throws: Never.self) { try DPoPProofVerifier().verify(fixture.proof(for: token, url: htu), for: request, now: fixture.now) }
        }
        for htu in ["http://api.example.com/payments", "https://api.example.com:8443/payments", "https://api.example.com/Payments",
                    "https://api.example.com/payments/", "https://evil.example.com/payments", "https://user@api.example.com/payments", "/payments"] {
            expectRefused(try fixture.proof(for: token, url: htu), request: request)
        }
    }

    @Test func refusesWrongMethodOldOrFutureProofs() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        expectRefused(try fixture.proof(for: token, method: "GET"), request: request)
        expectRefused(try fixture.proof(for: token, method: "post"), request: request)
        #expect(throws: Never.self) { try DPoPProofVerifier().verify(fixture.proof(for: token, at: fixture.now - 5), for: request, now: fixture.now) }
        expectRefused(try fixture.proof(for: token, at: fixture.now - 6), request: request)
        expectRefused(try fixture.proof(for: token, at: fixture.now + 6), request: request)
    }

    /// `max_age` keeps its milliseconds: 1500 ms is not cut to 1 s, 500 ms not to 0 s. With
    /// whole-second `iat`, a proof passes when any moment of its `iat` second lies within
    /// `max_age` of now.
    @Test func subSecondMaximumAgeKeepsItsMilliseconds() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let second = fixture.now * 1000
        func verifies(iat: Int64, at nowMilliseconds: Int64, maximumAge: Duration) throws -> Bool {
            let verifier = DPoPProofVerifier(policy: .init(maximumAge: maximumAge))
            do {
                _ = try verifier.verify(fixture.proof(for: token, at: iat), for: request, nowMilliseconds: nowMilliseconds)
                return true
            } catch let error as EKeyError {
                #expect(error.reason.contains(maximumAge == .milliseconds(1500) ? "1500 ms" : "500 ms"), "\(error.reason)")
                return false
            }
        }
        #expect(try verifies(iat: fixture.now - 2, at: second, maximumAge: .milliseconds(1500)), "2 s back, its second ended 1.001 s ago")
        #expect(try !verifies(iat: fixture.now - 3, at: second, maximumAge: .milliseconds(1500)))
        #expect(try verifies(iat: fixture.now + 1, at: second, maximumAge: .milliseconds(1500)))
        #expect(try !verifies(iat: fixture.now + 2, at: second, maximumAge: .milliseconds(1500)))
        #expect(try verifies(iat: fixture.now, at: second + 900, maximumAge: .milliseconds(500)), "made within this second")
        #expect(try verifies(iat: fixture.now - 1, at: second + 400, maximumAge: .milliseconds(500)), "its second ended 401 ms ago")
        #expect(try !verifies(iat: fixture.now - 1, at: second + 600, maximumAge: .milliseconds(500)), "its second ended 601 ms ago")
        #expect(try !verifies(iat: fixture.now + 1, at: second + 400, maximumAge: .milliseconds(500)), "600 ms in the future")
        #expect(try !verifies(iat: Int64.max / 100, at: second, maximumAge: .milliseconds(500)), "a huge iat is refused, not overflowed")
        #expect(try !verifies(iat: Int64.min / 100, at: second, maximumAge: .milliseconds(500)))
    }

    @Test func refusesHostileHeaders() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)
        var cases: [[String: JSONValue]] = []
        for typ: JSONValue in ["jwt", "DPOP+JWT", "EKEY", 1] {
            var copy = header
            copy["typ"] = typ
            cases.append(copy)
        }
        var withPrivate = header
        withPrivate["jwk"] = fixture.proofKey.jwk.jsonValue  // `d` included: key material must never travel
        cases.append(withPrivate)
        var noKey = header
        noKey["jwk"] = nil
        cases.append(noKey)
        var foreignKey = header
        foreignKey["jwk"] = PrivateSigningKey(generating: .es256).publicKey.jwk.jsonValue
        cases.append(foreignKey)
        var edKeyDeclared = header
        edKeyDeclared["jwk"] = PrivateSigningKey(generating: .edDSA).publicKey.jwk.jsonValue
        cases.append(edKeyDeclared)
        for hostile in cases {
            expectRefused(try rawProof(header: hostile, claims: claims), request: request)
        }
        var none = header
        none["alg"] = "none"
        let unsigned = Base64URL.encode(JSONValue.object(none).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(claims).serializedBytes()) + "."
        expectRefused(unsigned, request: request)
    }

    @Test func refusesMissingOrBadClaims() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)
        let mutations: [(String, JSONValue?)] = [
            ("jti", nil), ("jti", ""), ("jti", .string(String(repeating: "j", count: 129))), ("jti", 5), ("htm", nil),
            ("htu", nil), ("iat", nil), ("iat", "1800000000"), ("iat", .double(1_800_000_000.5)), ("ath", nil),
            ("ath", .string(EKeyToken.accessTokenHash(token + "x"))), ("ath", 1), ("nonce", 7),
        ]
        for (name, value) in mutations {
            var copy = claims
            copy[name] = value
            expectRefused(try rawProof(header: header, claims: copy), request: request)
        }
        var maximal = claims
        maximal["jti"] = .string(String(repeating: "j", count: 128))
        #expect(throws: Never.self) { try DPoPProofVerifier().verify(rawProof(header: header, claims: maximal), for: request, now: fixture.now) }
    }

    @Test func refusesAProofByAnotherKeyThanTheBoundOne() throws {
        let token = try fixture.token()
        var other = fixture
        other.proofKey = PrivateSigningKey(generating: .es256)
        expectRefused(try other.proof(for: token), request: try fixture.proofRequest(token: token))
    }

    @Test func prototypeNonceEqualsTraceFormUnlessAthIsRequired() throws {
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)
        var prototype = claims
        prototype["ath"] = nil
        prototype["nonce"] = .string(fixture.trace)
        let proof = try rawProof(header: header, claims: prototype)
        #expect(throws: Never.self) { try DPoPProofVerifier().verify(proof, for: request, now: fixture.now) }
        expectRefused(proof, request: request, policy: .init(requireAccessTokenHash: true))
        prototype["nonce"] = .string(EKeyClaims.randomTrace())
        expectRefused(try rawProof(header: header, claims: prototype), request: request)
    }

    @Test func serverNoncesCurrentAndPreviousWindowOnly() throws {
        let secret = [UInt8](repeating: 7, count: 32)
        let nonces = try DPoPNonceSource(secret: secret, window: .seconds(60))
        let otherReplica = try DPoPNonceSource(secret: secret, window: .seconds(60))
        let policy = DPoPProofVerifier.Policy(serverNonces: nonces)
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)

        expectRefused(try rawProof(header: header, claims: claims), request: request, policy: policy, code: .useDPoPNonce)
        for (issuedAt, expected) in [(fixture.now, true), (fixture.now - 60, true), (fixture.now - 120, false), (fixture.now + 60, false)] {
            var copy = claims
            copy["nonce"] = .string(otherReplica.nonce(now: issuedAt))
            let proof = try rawProof(header: header, claims: copy)
            if expected {
                #expect(throws: Never.self) { try DPoPProofVerifier(policy: policy).verify(proof, for: request, now: fixture.now) }
            } else {
                expectRefused(proof, request: request, policy: policy, code: .useDPoPNonce)
            }
        }
        var noAth = claims
        noAth["ath"] = nil
        noAth["nonce"] = .string(nonces.nonce(now: fixture.now))
        expectRefused(try rawProof(header: header, claims: noAth), request: request, policy: policy, code: .invalidProof)

        let otherSecret = try DPoPNonceSource(secret: [UInt8](repeating: 8, count: 32), window: .seconds(60))
        var foreign = claims
        foreign["nonce"] = .string(otherSecret.nonce(now: fixture.now))
        expectRefused(try rawProof(header: header, claims: foreign), request: request, policy: policy, code: .useDPoPNonce)
        #expect(throws: EKeyError.self) { try DPoPNonceSource(secret: [UInt8](repeating: 1, count: 31), window: .seconds(60)) }
    }

    /// Nonces index windows of whole epoch seconds: a fraction of a second in the window is
    /// dropped, and a window shorter than one second is refused.
    @Test func serverNonceWindowCountsWholeSeconds() throws {
        let secret = [UInt8](repeating: 7, count: 32)
        #expect(throws: EKeyError.self) { try DPoPNonceSource(secret: secret, window: .milliseconds(999)) }
        let nonces = try DPoPNonceSource(secret: secret, window: .milliseconds(60_900))
        #expect(nonces.window == .seconds(60))
        let start = fixture.now - fixture.now % 60
        #expect(nonces.nonce(now: start) == nonces.nonce(now: start + 59))
        #expect(nonces.nonce(now: start) != nonces.nonce(now: start + 60))
    }

    @Test func tokenRequestProofsNeedNoAccessToken() throws {
        let proof = try DPoPProof(method: "POST", url: "https://issuer.example.com/token", issuedAt: fixture.now).signed(with: fixture.proofKey)
        let verified = try DPoPProofVerifier().verify(proof, for: .init(method: "POST", url: "https://issuer.example.com/token"), now: fixture.now)
        #expect(verified.thumbprint == fixture.proofKey.publicKey.jwk.thumbprint)
    }

    /// One verifier reads a client's proof key once (DPoPProofKeyCache) and still checks the
    /// signature, claims and binding of every proof that comes under the same header text.
    @Test func aKnownProofHeaderStillGetsEveryCheck() throws {
        let verifier = DPoPProofVerifier()
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)
        for jti in ["j-1", "j-2", "j-3"] {
            var copy = claims
            copy["jti"] = .string(jti)
            let verified = try verifier.verify(rawProof(header: header, claims: copy), for: request, now: fixture.now)
            #expect(verified.thumbprint == fixture.proofKey.publicKey.jwk.thumbprint)
        }
        #expect(verifier.proofKeys.count == 1, "three proofs under one header read the key once")

        func refused(_ proof: String, _ why: String, request: DPoPProofVerifier.Request = request) {
            #expect(throws: EKeyError.self, "\(why)") { try verifier.verify(proof, for: request, now: fixture.now) }
        }
        let otherKey = PrivateSigningKey(generating: .es256)
        refused(try rawProof(header: header, claims: claims, key: otherKey), "the same header signed by a key it does not name")
        let valid = try rawProof(header: header, claims: claims)
        let parts = valid.split(separator: ".")
        var tampered = claims
        tampered["jti"] = "j-4"
        refused(parts[0] + "." + Base64URL.encode(JSONValue.object(tampered).serializedBytes()) + "." + parts[2], "a payload changed after signing")
        var wrongMethod = claims
        wrongMethod["htm"] = "GET"
        refused(try rawProof(header: header, claims: wrongMethod), "another method")
        var otherBinding = fixture
        otherBinding.proofKey = otherKey
        let otherToken = try otherBinding.token()
        refused(try rawProof(header: header, claims: validParts(token: otherToken).1), "a token bound to another key",
                request: try otherBinding.proofRequest(token: otherToken))
        #expect(verifier.proofKeys.count == 1)
    }

    @Test func aRefusedProofHeaderIsRefusedEveryTimeAndNotKept() throws {
        let verifier = DPoPProofVerifier()
        let token = try fixture.token()
        let request = try fixture.proofRequest(token: token)
        let (header, claims) = validParts(token: token)
        var withPrivate = header
        withPrivate["jwk"] = fixture.proofKey.jwk.jsonValue
        var noKey = header
        noKey["jwk"] = nil
        var wrongType = header
        wrongType["typ"] = "jwt"
        for hostile in [withPrivate, noKey, wrongType] {
            let proof = try rawProof(header: hostile, claims: claims)
            for attempt in 1...2 {
                #expect(throws: EKeyError.self, "attempt \(attempt) with \(hostile)") { try verifier.verify(proof, for: request, now: fixture.now) }
            }
        }
        #expect(verifier.proofKeys.count == 0, "no refused header is kept")
        var edKeyDeclared = header
        edKeyDeclared["jwk"] = PrivateSigningKey(generating: .edDSA).publicKey.jwk.jsonValue
        let mismatch = try rawProof(header: edKeyDeclared, claims: claims)
        for attempt in 1...2 {
            #expect(throws: EKeyError.self, "ES256 header with an Ed25519 key, attempt \(attempt)") {
                try verifier.verify(mismatch, for: request, now: fixture.now)
            }
        }
    }

    @Test func theProofKeyCacheStartsOverWhenFull() throws {
        let cache = DPoPProofKeyCache(capacity: 2)
        for index in 0..<3 {
            let jwk = PrivateSigningKey(generating: .es256).publicKey.jwk
            cache.remember(DPoPProofKey(jwk: jwk, key: try jwk.publicKey(), thumbprint: jwk.thumbprint), for: "header-\(index)")
        }
        #expect(cache.count == 1)
        #expect(cache.value(for: "header-2") != nil)
        #expect(cache.value(for: "header-0") == nil)
    }
}
