import Crypto

/// What a verifier expects of a token (gateway config: `gateway.issuer`, the route's audience).
public struct TokenValidationPolicy: Sendable, Hashable {
    /// The expected `iss`.
    public var issuer: String
    /// The expected `aud`.
    public var audience: String
    /// Tolerance for `exp` and `iat`, in seconds (`gateway.clock_skew`, default 5).
    public var clockSkew: Int64

    /// Creates a policy.
    public init(issuer: String, audience: String, clockSkew: Int64 = 5) {
        self.issuer = issuer
        self.audience = audience
        self.clockSkew = clockSkew
    }
}

/// An E-Key whose signature and claims have been verified.
public struct VerifiedEKey: Sendable, Hashable {
    /// The claims.
    public let claims: EKeyClaims
    /// What the holder must prove.
    public let binding: TokenBinding
    /// The key that signed it.
    public let keyID: String
}

/// An E-Key in compact JWS form (docs/spec/token.md), parsed but not yet verified.
///
/// Use ``init(parsing:)`` to read the header (to find the key by ``keyID``), then
/// ``verify(using:policy:now:)``.
public struct EKeyToken: Sendable {
    /// Tokens over this many bytes are refused with 400 `invalid_request`.
    public static let maximumLength = 8192
    /// The `typ` header of every E-Key.
    public static let type = "EKEY"

    /// The token text, as received.
    public let compact: String
    /// The parsed JWS.
    public let jws: JWSCompact
    /// The `kid` header.
    public let keyID: String
    /// The `bind` header, if present.
    public let bind: BindingMode?

    /// Parses the token's structure and header.
    ///
    /// - Throws: `invalid_request` (400) over 8 KiB; `invalid_token` for anything else malformed.
    public init(parsing compact: String) throws(EKeyError) {
        guard compact.utf8.count <= Self.maximumLength else {
            throw EKeyError(.invalidRequest, "the token is over \(Self.maximumLength) bytes; E-Keys are small, check what is sent")
        }
        do {
            jws = try JWSCompact(parsing: compact, maximumLength: Self.maximumLength)
        } catch {
            throw EKeyError(.invalidToken, "the token is not a valid JWS: \(error.reason)")
        }
        guard jws.headerString("typ") == Self.type else {
            throw EKeyError(.invalidToken, "the token's typ must be \"\(Self.type)\"")
        }
        for injected in ["jwk", "jku", "x5u", "x5c"] where jws.header[injected] != nil {
            throw EKeyError(.invalidToken, "the token header carries \"\(injected)\"; E-Key keys come only from the JWKS by kid")
        }
        guard let keyID = jws.headerString("kid"), !keyID.isEmpty, keyID.utf8.count <= 128 else {
            throw EKeyError(.invalidToken, "the token has no \"kid\" header (1-128 characters)")
        }
        if let bindValue = jws.header["bind"] {
            guard let text = bindValue.stringValue, let mode = BindingMode(rawValue: text) else {
                throw EKeyError(.invalidToken, "the token's bind header must be \"DPoP\" or \"mTLS\"")
            }
            bind = mode
        } else {
            bind = nil
        }
        self.compact = compact
        self.keyID = keyID
    }

    /// Verifies signature and claims (docs/spec/gateway.md step 2).
    ///
    /// - Parameters:
    ///   - key: the publisher's key with this token's ``keyID``.
    ///   - now: the current time in epoch seconds.
    /// - Throws: `expired_token` when `exp` has passed beyond the skew, else `invalid_token`.
    public func verify(using key: PublicSigningKey, policy: TokenValidationPolicy, now: Int64) throws(EKeyError)
        -> VerifiedEKey
    {
        try Self.validate(signedClaims(using: key), bind: bind, keyID: keyID, policy: policy, now: now)
    }

    /// The claims, once the signature has verified with `key`; nothing else is checked yet.
    ///
    /// - Throws: `invalid_token` for a bad signature or malformed claims.
    public func signedClaims(using key: PublicSigningKey) throws(EKeyError) -> EKeyClaims {
        do {
            try jws.verify(using: key)
        } catch {
            throw EKeyError(.invalidToken, "the token signature does not verify: \(error.reason)")
        }
        return try EKeyClaims(payload: jws.payload)
    }

    /// The checks of docs/spec/gateway.md step 2 that follow the signature: `iss`, `aud`, `exp` and
    /// `iat` with skew, lifetime, and `cnf` agreeing with `bind`. Run on every use, also for
    /// a token whose signature was verified before.
    public static func validate(
        _ claims: EKeyClaims, bind: BindingMode?, keyID: String, policy: TokenValidationPolicy, now: Int64
    ) throws(EKeyError) -> VerifiedEKey {
        guard claims.issuer == policy.issuer else {
            throw EKeyError(.invalidToken, "the token's iss is not the configured issuer")
        }
        guard claims.audience == policy.audience else {
            throw EKeyError(.invalidToken, "the token's aud is not this route's audience")
        }
        guard now <= claims.expiresAt + policy.clockSkew else {
            throw EKeyError(.expiredToken, "the token expired \(now - claims.expiresAt) s ago; request a new one")
        }
        guard claims.issuedAt <= now + policy.clockSkew else {
            throw EKeyError(.invalidToken, "the token's iat is in the future; check the issuer's clock")
        }
        guard claims.expiresAt > claims.issuedAt, claims.lifetime <= EKeyClaims.maximumLifetime else {
            throw EKeyError(.invalidToken, "the token's lifetime (exp - iat) must be 1..\(EKeyClaims.maximumLifetime) s")
        }
        let binding = try TokenBinding(bind: bind, confirmation: claims.confirmation)
        return VerifiedEKey(claims: claims, binding: binding, keyID: keyID)
    }

    /// Signs claims into a compact E-Key.
    public static func sign(
        _ claims: EKeyClaims, keyID: String, bind: BindingMode, using key: PrivateSigningKey
    ) throws -> String {
        var header = JSONObjectWriter(capacity: 96)
        header.string("alg", key.algorithm.rawValue)
        header.string("bind", bind.rawValue)
        header.string("kid", keyID)
        header.string("typ", type)
        return try JWSCompact.sign(protectedHeader: header.finish(), payload: claims.serializedBytes(), using: key)
    }

    /// `base64url(SHA-256(token))`, the DPoP `ath` (RFC 9449 §4.2).
    public static func accessTokenHash(_ token: String) -> String {
        Base64URL.encode(sha256(Array(token.utf8)))
    }
}
