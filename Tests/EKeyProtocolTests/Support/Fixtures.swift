import Foundation
import EKeyProtocol

/// The RFC vectors of `Vectors/rfc-vectors.json` (copied from ../shared/vectors, never retyped).
enum Vectors {
    static let all: [String: JSONValue] = {
        let url = Bundle.module.url(forResource: "rfc-vectors", withExtension: "json", subdirectory: "Vectors")!
        let data = try! Data(contentsOf: url)
        return try! StrictJSONParser().parseObject(Array(data))
    }()

    static func vector(_ name: String) -> [String: JSONValue] {
        all[name]!.objectValue!
    }
}

/// Builds valid tokens and proofs that tests then break one way at a time.
struct TokenFixture {
    static let issuer = "https://issuer.example.com"
    static let audience = "https://api.example.com"
    static let origin = "https://api.example.com"

    var issuerKey = PrivateSigningKey(generating: .es256)
    var proofKey = PrivateSigningKey(generating: .es256)
    var keyID = "issuer-key-1"
    var now: Int64 = 1_800_000_000
    var trace = EKeyClaims.randomTrace()

    var policy: TokenValidationPolicy {
        TokenValidationPolicy(issuer: Self.issuer, audience: Self.audience, clockSkew: 5)
    }

    func claims(lifetime: Int64 = 30, action: String = "POST:/payments", limit: Int = 1) throws -> EKeyClaims {
        EKeyClaims(
            issuer: Self.issuer, subject: "spiffe://example.org/checkout", audience: Self.audience,
            issuedAt: now, expiresAt: now + lifetime,
            capability: try Capability(action: CapabilityAction(parsing: action), limit: limit),
            confirmation: .jwkThumbprint(proofKey.publicKey.jwk.thumbprint), trace: trace)
    }

    func token(_ claims: EKeyClaims? = nil, bind: BindingMode = .dpop) throws -> String {
        try EKeyToken.sign(claims ?? self.claims(), keyID: keyID, bind: bind, using: issuerKey)
    }

    /// Signs an arbitrary header and payload with the issuer key, bypassing every check of the builders.
    func rawToken(header: JSONValue, payload: JSONValue) throws -> String {
        let signingInput = Base64URL.encode(header.serializedBytes()) + "." + Base64URL.encode(payload.serializedBytes())
        return signingInput + "." + Base64URL.encode(try issuerKey.signature(for: Array(signingInput.utf8)))
    }

    func proof(for token: String, method: String = "POST", url: String = "https://api.example.com/payments", at time: Int64? = nil)
        throws -> String
    {
        try DPoPProof(method: method, url: url, issuedAt: time ?? now, accessTokenHash: EKeyToken.accessTokenHash(token))
            .signed(with: proofKey)
    }

    func proofRequest(token: String, method: String = "POST", url: String = "https://api.example.com/payments") throws
        -> DPoPProofVerifier.Request
    {
        let verified = try EKeyToken(parsing: token).verify(using: issuerKey.publicKey, policy: policy, now: now)
        guard case .dpop(let jkt) = verified.binding else { fatalError("fixture tokens are DPoP-bound") }
        return DPoPProofVerifier.Request(method: method, url: url, accessToken: token, trace: verified.claims.trace, boundThumbprint: jkt)
    }
}
