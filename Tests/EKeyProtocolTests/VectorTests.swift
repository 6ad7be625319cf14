import EKeyProtocol
import Testing

/// Published vectors: RFC 7638 §3.1, RFC 8037 Appendix A, RFC 7515 Appendix A.3, RFC 9449 §4.1 and §7.1.
struct VectorTests {
    @Test func rfc7638RSAThumbprint() throws {
        let vector = Vectors.vector("rfc7638_3_1")
        let jwk = try JWK(parsing: vector["jwk"]!, context: .publicOnly)
        #expect(jwk.thumbprint == vector["thumbprint_sha256"]!.stringValue)
        #expect(throws: JWSError.self) { try jwk.publicKey() }

        // A token request may not bind to it: an RSA key cannot sign DPoP proofs here.
        let body = JSONValue.object([
            "aud": "https://api.example.com", "cap": ["action": "POST:/payments", "limit": 1], "bind": "DPoP", "jwk": vector["jwk"]!,
        ]).serializedBytes()
        do {
            _ = try TokenRequest(body: body)
            Issue.record("a token request binding an RSA jwk was accepted")
        } catch {
            #expect(error.code == .invalidRequest)
            #expect(error.description.contains("cannot verify"), "\(error)")
        }
    }

    @Test func rfc8037Ed25519KeyThumbprintAndSignature() throws {
        let vector = Vectors.vector("rfc8037_A")
        let privateJWK = try JWK(parsing: vector["private_jwk"]!, context: .allowPrivate)
        let publicJWK = try JWK(parsing: vector["public_jwk"]!, context: .publicOnly)
        #expect(publicJWK.thumbprint == vector["thumbprint_sha256"]!.stringValue)
        #expect(privateJWK.thumbprint == publicJWK.thumbprint)
        #expect(privateJWK.publicJWK == publicJWK)

        let expected = vector["jws"]!.stringValue!
        let jws = try JWSCompact(parsing: expected)
        try jws.verify(using: publicJWK.publicKey())
        #expect(jws.payload == Array(vector["payload_text"]!.stringValue!.utf8))

        // Ed25519 is deterministic: re-signing the same header and payload gives the RFC's JWS.
        let key = try privateJWK.privateKey()
        let signingInput = expected.split(separator: ".")[0] + "." + expected.split(separator: ".")[1]
        let signature = try key.signature(for: Array(signingInput.utf8))
        #expect(signingInput + "." + Base64URL.encode(signature) == expected)
    }

    @Test func rfc7515ES256VerifiesAndFailsWithOneByteChanged() throws {
        let vector = Vectors.vector("rfc7515_A_3")
        let privateJWK = try JWK(parsing: vector["private_jwk"]!, context: .allowPrivate)
        let key = try privateJWK.publicKey()
        let token = vector["jws"]!.stringValue!
        let jws = try JWSCompact(parsing: token)
        try jws.verify(using: key)
        #expect(jws.payload.contains(0x0D))  // CR LF kept: verified over the received bytes

        var tampered = Array(token.utf8)
        let payloadStart = tampered.firstIndex(of: UInt8(ascii: "."))! + 1
        tampered[payloadStart + 5] = tampered[payloadStart + 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tamperedJWS = try JWSCompact(parsing: String(decoding: tampered, as: UTF8.self))
        let error = #expect(throws: JWSError.self) { try tamperedJWS.verify(using: key) }
        #expect(error?.kind == .invalidSignature)
    }

    @Test func rfc9449TokenRequestProof() throws {
        let vector = Vectors.vector("rfc9449_4_1")
        let claims = vector["claims"]!.objectValue!
        let verifier = DPoPProofVerifier()
        let proof = try verifier.verify(
            vector["proof"]!.stringValue!,
            for: .init(method: claims["htm"]!.stringValue!, url: claims["htu"]!.stringValue!),
            now: vector["verify_at_epoch"]!.integerValue!)
        #expect(proof.thumbprint == vector["jwk_thumbprint_sha256"]!.stringValue)
        #expect(proof.jti == claims["jti"]!.stringValue)
        #expect(proof.jwk.jsonValue == vector["header"]!["jwk"])

        let jws = try JWSCompact(parsing: vector["proof"]!.stringValue!)
        #expect(JSONValue.object(jws.header) == vector["header"])
        #expect(try StrictJSONParser().parse(jws.payload) == vector["claims"])
    }

    @Test func rfc9449ResourceProofWithAccessTokenHash() throws {
        let vector = Vectors.vector("rfc9449_7_1")
        let claims = vector["claims"]!.objectValue!
        let accessToken = vector["access_token"]!.stringValue!
        #expect(EKeyToken.accessTokenHash(accessToken) == vector["ath"]!.stringValue)
        let request = DPoPProofVerifier.Request(
            method: "GET", url: claims["htu"]!.stringValue!, accessToken: accessToken,
            boundThumbprint: vector["jwk_thumbprint_sha256"]!.stringValue)
        let now = vector["verify_at_epoch"]!.integerValue!
        let proof = try DPoPProofVerifier().verify(vector["proof"]!.stringValue!, for: request, now: now)
        #expect(proof.jti == claims["jti"]!.stringValue)

        var otherToken = request
        otherToken.accessToken = accessToken + "x"
        let error = #expect(throws: EKeyError.self) {
            try DPoPProofVerifier().verify(vector["proof"]!.stringValue!, for: otherToken, now: now)
        }
        #expect(error?.code == .invalidProof)
    }
}
