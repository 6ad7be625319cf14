import EKeyProtocol
import Testing

/// Error codes, statuses and `WWW-Authenticate` (docs/spec/gateway.md table).
struct ErrorWireTests {
    @Test(arguments: [
        (EKeyError.Code.invalidRequest, 400), (.invalidToken, 401), (.expiredToken, 401), (.invalidProof, 401),
        (.replayDetected, 401), (.useDPoPNonce, 401), (.capabilityMismatch, 403), (.temporarilyUnavailable, 503),
        (.badGateway, 502), (.gatewayTimeout, 504), (.invalidClient, 401), (.accessDenied, 403), (.rateLimited, 429),
        (.keyRevoked, 410),
    ])
    func statuses(code: EKeyError.Code, status: Int) {
        #expect(EKeyError(code, "x").status == status)
        #expect(EKeyError(code, "why").body == ["error": .string(code.wireName), "error_description": "why"])
    }

    @Test func missingTokenGetsBothBareChallenges() {
        let error = EKeyError.missingToken()
        #expect(error.status == 401)
        #expect(error.code == .invalidRequest)
        #expect(error.wwwAuthenticate(scheme: nil) == [#"DPoP algs="ES256 EdDSA""#, "EKey"])
    }

    @Test func challengesUseTheClientsSchemeAndTheRFCCode() {
        #expect(EKeyError(.invalidToken, "x").wwwAuthenticate(scheme: .dpop) == [#"DPoP error="invalid_token", algs="ES256 EdDSA""#])
        #expect(EKeyError(.expiredToken, "x").wwwAuthenticate(scheme: .ekey) == [#"EKey error="invalid_token""#])
        #expect(EKeyError(.replayDetected, "x").wwwAuthenticate(scheme: .bearer) == [#"Bearer error="invalid_token""#])
        #expect(EKeyError.invalidDPoPProof("x").wwwAuthenticate(scheme: .dpop) == [#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA""#])
        #expect(EKeyError.certificateBindingFailed("x").wwwAuthenticate(scheme: .ekey) == [#"EKey error="invalid_token""#])
        #expect(EKeyError(.useDPoPNonce, "x").wwwAuthenticate(scheme: .dpop) == [#"DPoP error="use_dpop_nonce", algs="ES256 EdDSA""#])
        #expect(EKeyError(.capabilityMismatch, "x").wwwAuthenticate(scheme: .dpop) == [#"DPoP error="insufficient_scope", algs="ES256 EdDSA""#])
        #expect(EKeyError(.capabilityMismatch, "x").wwwAuthenticate(scheme: .ekey) == [#"EKey error="insufficient_scope""#])
        #expect(EKeyError(.invalidRequest, "x").wwwAuthenticate(scheme: .dpop).isEmpty)
        #expect(EKeyError(.temporarilyUnavailable, "x").wwwAuthenticate(scheme: .dpop).isEmpty)
    }
}
