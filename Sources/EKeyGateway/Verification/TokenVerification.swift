public import EKeyProtocol
public import EKeyServer
import NIOConcurrencyHelpers

/// Step 2: structure, `typ`, key by `kid` from the publisher's JWKS (an unknown kid causes
/// at most one refresh per second), signature, `iss`, `aud` = the route's audience, `exp`
/// with skew, `iat`, lifetime, `cap`, `trace`, `cnf` agreeing with `bind`.
public struct TokenVerification: Sendable {
    let keys: JWKSCache
    let issuer: String
    /// `gateway.clock_skew` in whole seconds, as token times count.
    let clockSkew: Int64
    /// Public keys already decoded from the publisher's JWKs, by `kid`; an entry is used
    /// only while the JWK it came from is unchanged.
    private let decoded = NIOLockedValueBox<[String: (jwk: JWK, key: PublicSigningKey)]>([:])
    /// Tokens whose signature already verified.
    let verifiedTokens: VerifiedTokenCache

    /// Creates the step.
    public init(keys: JWKSCache, issuer: String, clockSkew: Duration) {
        self.keys = keys
        self.issuer = issuer
        self.clockSkew = clockSkew.components.seconds
        self.verifiedTokens = VerifiedTokenCache()
    }

    /// What ``check(_:route:now:key:)`` found.
    public enum Check: Sendable {
        /// The token holds.
        case verified(VerifiedEKey)
        /// Deciding needs the publisher's key for this `kid`, which `key` did not give:
        /// the key set must be read (and maybe fetched) first.
        case keyNeeded(String)
    }

    /// The verified token, or a rejection; fetches the publisher's key set when the cached
    /// one is stale or lacks the token's `kid`.
    public func verify(_ extracted: TokenExtraction.Extracted, route: Route, now: Int64) async throws(Rejection) -> VerifiedEKey {
        switch try check(extracted, route: route, now: now, key: keys.freshKey(forKeyID:)) {
        case .verified(let token):
            return token
        case .keyNeeded(let keyID):
            let jwk = await keys.key(forKeyID: keyID)
            switch try check(extracted, route: route, now: now, key: { $0 == keyID ? jwk : nil }, keyNeededIsFinal: true) {
            case .verified(let token):
                return token
            case .keyNeeded:
                throw Self.unknownKey(extracted.scheme)
            }
        }
    }

    /// Step 2 without waiting: `key` gives the publisher's key for a `kid` when it is at hand
    /// (``JWKSCache/freshKey(forKeyID:)``). Without it the answer is ``Check/keyNeeded(_:)``,
    /// or, when `keyNeededIsFinal` (the set was just read), the unknown-`kid` rejection.
    public func check(
        _ extracted: TokenExtraction.Extracted, route: Route, now: Int64, key: (String) -> JWK?, keyNeededIsFinal: Bool = false
    ) throws(Rejection) -> Check {
        let scheme = extracted.scheme
        let policy = TokenValidationPolicy(issuer: issuer, audience: route.audience, clockSkew: clockSkew)
        if let known = verifiedTokens.entry(for: extracted.token) {
            let current = key(known.keyID)
            if current == nil, !keyNeededIsFinal { return .keyNeeded(known.keyID) }
            if current == known.jwk {
                return .verified(
                    try checked(scheme: scheme, signed: { known.claims }) { () throws(EKeyError) in
                        try EKeyToken.validate(known.claims, bind: known.bind, keyID: known.keyID, policy: policy, now: now)
                    })
            }
            // The publisher rotated or revoked that key: verify from scratch.
            verifiedTokens.remove(extracted.token)
        }
        let token: EKeyToken
        do {
            token = try EKeyToken(parsing: extracted.token)
        } catch {
            throw Rejection(error, scheme: scheme, outcome: VerificationOutcome(refusing: error))
        }
        guard let jwk = key(token.keyID) else {
            if keyNeededIsFinal { throw Self.unknownKey(scheme) }
            return .keyNeeded(token.keyID)
        }
        var signed: EKeyClaims?
        let verified = try checked(scheme: scheme, signed: { signed }) { () throws(EKeyError) in
            let claims = try token.signedClaims(using: publicKey(jwk, keyID: token.keyID))
            signed = claims
            return try EKeyToken.validate(claims, bind: token.bind, keyID: token.keyID, policy: policy, now: now)
        }
        if let signed, signed.capability.limit > 1 {
            verifiedTokens.insert(
                .init(jwk: jwk, keyID: token.keyID, bind: token.bind, claims: signed),
                for: extracted.token, now: now, clockSkew: clockSkew)
        }
        return .verified(verified)
    }

    private static func unknownKey(_ scheme: AuthorizationScheme) -> Rejection {
        Rejection(
            EKeyError(.invalidToken, "the token's kid is not in the publisher's key set; request a new token"),
            scheme: scheme, outcome: .invalidToken)
    }

    /// Runs the claim checks, maps their error to a rejection, and refuses a DPoP-bound token
    /// presented as Bearer. A rejection carries the claims once their signature held
    /// (`signed`), so its audit event names the token.
    private func checked(
        scheme: AuthorizationScheme, signed: () -> EKeyClaims?, _ validate: () throws(EKeyError) -> VerifiedEKey
    ) throws(Rejection) -> VerifiedEKey {
        let verified: VerifiedEKey
        do {
            verified = try validate()
        } catch {
            throw Rejection(error, scheme: scheme, outcome: VerificationOutcome(refusing: error), token: signed())
        }
        if scheme == .bearer, verified.binding.mode == .dpop {
            throw Rejection(
                EKeyError(.invalidToken, "a DPoP-bound token must be sent as 'Authorization: DPoP <token>' with a proof, not as Bearer"),
                scheme: scheme, outcome: .invalidToken, token: verified.claims)
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
