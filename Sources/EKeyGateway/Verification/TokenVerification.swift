public import EKeyProtocol
public import EKeyServer
import NIOConcurrencyHelpers

/// Step 2: structure, `typ`, key by `kid` from the publisher's JWKS (an unknown kid causes
/// at most one refresh per second), signature, `iss`, `aud` = the route's audience, `exp`
/// with skew, `iat`, lifetime, `cap`, `trace`, `cnf` agreeing with `bind`.
public struct TokenVerification: Sendable {
    let keys: JWKSCache
    let issuer: String
    let clockSkew: Int64
    /// Public keys already decoded from the publisher's JWKs, by `kid`; an entry is used
    /// only while the JWK it came from is unchanged.
    private let decoded = NIOLockedValueBox<[String: (jwk: JWK, key: PublicSigningKey)]>([:])

    /// Creates the step.
    public init(keys: JWKSCache, issuer: String, clockSkew: Int64) {
        self.keys = keys
        self.issuer = issuer
        self.clockSkew = clockSkew
    }

    /// The verified token, or a rejection.
    public func verify(_ extracted: TokenExtraction.Extracted, route: Route, now: Int64) async throws(Rejection) -> VerifiedEKey {
        let scheme = extracted.scheme
        let token: EKeyToken
        do {
            token = try EKeyToken(parsing: extracted.token)
        } catch {
            throw Rejection(error, scheme: scheme, outcome: Rejection.outcome(for: error))
        }
        guard let jwk = await keys.key(forKeyID: token.keyID) else {
            throw Rejection(
                EKeyError(.invalidToken, "the token's kid is not in the publisher's key set; request a new token"),
                scheme: scheme, outcome: "invalid_token")
        }
        let verified: VerifiedEKey
        do {
            let key = try publicKey(jwk, keyID: token.keyID)
            verified = try token.verify(using: key, policy: TokenValidationPolicy(issuer: issuer, audience: route.audience, clockSkew: clockSkew), now: now)
        } catch {
            throw Rejection(error, scheme: scheme, outcome: Rejection.outcome(for: error))
        }
        if scheme == .bearer, verified.binding.mode == .dpop {
            throw Rejection(
                EKeyError(.invalidToken, "a DPoP-bound token must be sent as 'Authorization: DPoP <token>' with a proof, not as Bearer"),
                scheme: scheme, outcome: "invalid_token", token: verified.claims)
        }
        return verified
    }

    private func publicKey(_ jwk: JWK, keyID: String) throws(EKeyError) -> PublicSigningKey {
        if let cached = decoded.withLockedValue({ $0[keyID] }), cached.jwk == jwk {
            return cached.key
        }
        do {
            let key = try jwk.publicKey()
            decoded.withLockedValue { entries in
                if entries.count >= 64 { entries.removeAll() }
                entries[keyID] = (jwk, key)
            }
            return key
        } catch {
            throw EKeyError(.invalidToken, "the publisher's key for this kid is unusable: \(error.reason)")
        }
    }
}
