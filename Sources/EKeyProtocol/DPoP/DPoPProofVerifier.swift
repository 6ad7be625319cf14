/// Verifies DPoP proofs (RFC 9449 §4.3; docs/spec/gateway.md step 3 and §3 for token requests).
///
/// Checks, in order: `typ`, `alg`, a public-only `jwk` of that algorithm, the signature,
/// `htm`, `htu`, `iat`, `jti`, then the server nonce, `ath` (or the prototype's
/// `nonce` = trace), and the key's thumbprint. Replay of `jti` is the store's job.
public struct DPoPProofVerifier: Sendable {
    /// How proofs are judged.
    public struct Policy: Sendable {
        /// How far `iat` may be from now (`gateway.dpop.max_age`, default 5 s), to the
        /// millisecond. `iat` counts whole seconds, so a proof passes when any moment of its
        /// `iat` second lies within this of now.
        public var maximumAge: Duration
        /// Refuse the prototype form (`nonce` = trace instead of `ath`).
        public var requireAccessTokenHash: Bool
        /// When set, proofs must carry a current server nonce (`gateway.dpop.nonce`).
        public var serverNonces: DPoPNonceSource?

        /// Creates a policy.
        public init(maximumAge: Duration = .seconds(5), requireAccessTokenHash: Bool = false, serverNonces: DPoPNonceSource? = nil) {
            self.maximumAge = maximumAge
            self.requireAccessTokenHash = requireAccessTokenHash
            self.serverNonces = serverNonces
        }
    }

    /// What the request the proof came with looks like.
    public struct Request: Sendable {
        /// The HTTP method.
        public var method: String
        /// The URI the proof must name: the route's public origin + path (or issuer URL + `/token`).
        public var url: String
        /// The access token sent with the proof (resource requests); `nil` for token requests.
        public var accessToken: String?
        /// The token's trace, for the prototype's `nonce` = trace form.
        public var trace: String?
        /// The thumbprint the token is bound to (`cnf.jkt`); `nil` for token requests.
        public var boundThumbprint: String?

        /// Creates a request description.
        public init(method: String, url: String, accessToken: String? = nil, trace: String? = nil, boundThumbprint: String? = nil) {
            self.method = method
            self.url = url
            self.accessToken = accessToken
            self.trace = trace
            self.boundThumbprint = boundThumbprint
        }
    }

    /// A proof that passed every check.
    public struct VerifiedProof: Sendable, Hashable {
        /// The proof's `jti`, for the replay check.
        public let jti: String
        /// The RFC 7638 thumbprint of the proof key.
        public let thumbprint: String
        /// The proof key.
        public let jwk: JWK
        /// The proof's `iat`.
        public let issuedAt: Int64
    }

    /// The policy in force.
    public let policy: Policy
    /// Keys of proof headers seen before; shared by copies of this verifier.
    let proofKeys: DPoPProofKeyCache

    /// Creates a verifier.
    public init(policy: Policy = Policy()) {
        self.policy = policy
        self.proofKeys = DPoPProofKeyCache(capacity: 1024)
    }

    /// Verifies `proof` for `request` at `now` (epoch seconds).
    ///
    /// - Throws: `invalid_proof` for any failed check; `use_dpop_nonce` when server nonces
    ///   are on and the proof lacks a current one.
    public func verify(_ proof: String, for request: Request, now: Int64) throws(EKeyError) -> VerifiedProof {
        try verify(proof, for: request, nowMilliseconds: now * 1000)
    }

    /// Verifies `proof` for `request` at `nowMilliseconds` (epoch milliseconds), so that a
    /// sub-second ``Policy/maximumAge`` keeps its meaning.
    ///
    /// - Throws: `invalid_proof` for any failed check; `use_dpop_nonce` when server nonces
    ///   are on and the proof lacks a current one.
    public func verify(_ proof: String, for request: Request, nowMilliseconds: Int64) throws(EKeyError) -> VerifiedProof {
        let now = nowMilliseconds / 1000
        let jws: JWSCompact
        do {
            jws = try JWSCompact(parsing: proof, maximumLength: 4096)
        } catch {
            throw .invalidDPoPProof("the DPoP proof is not a valid JWS: \(error.reason)")
        }
        guard jws.headerString("typ") == DPoPProof.type else {
            throw .invalidDPoPProof("the DPoP proof's typ must be \"\(DPoPProof.type)\"")
        }
        let headerEnd = proof.utf8.firstIndex(of: UInt8(ascii: ".")) ?? proof.utf8.endIndex
        let proofKey = try key(of: jws, headerText: Substring(proof.utf8[..<headerEnd]))
        do {
            try jws.verify(using: proofKey.key)
        } catch {
            throw .invalidDPoPProof("the DPoP proof is refused: \(error.reason)")
        }
        let jwk = proofKey.jwk
        let claims = try StrictJSONParser().parseObject(jws.payload) { EKeyError.invalidDPoPProof("the DPoP proof payload is not a valid JSON object: \($0)") }
        guard claims["htm"]?.stringValue == request.method else {
            throw .invalidDPoPProof("the DPoP proof's htm does not match the request method \(request.method)")
        }
        // The same text needs one parse (that it is a valid URI); other text is compared parsed.
        guard let htu = claims["htu"]?.stringValue, let proofURI = HTTPTargetURI(htu),
            htu == request.url || HTTPTargetURI(request.url) == proofURI
        else {
            throw .invalidDPoPProof("the DPoP proof's htu does not match \(HTTPTargetURI(request.url)?.description ?? request.url)")
        }
        guard let issuedAt = claims["iat"]?.integerValue else {
            throw .invalidDPoPProof("the DPoP proof has no integer iat")
        }
        let maximumAge = Self.milliseconds(policy.maximumAge)
        // iat counts whole seconds: the proof was made at some moment of [iat, iat + 1 s).
        let secondStart = issuedAt.multipliedReportingOverflow(by: 1000)
        guard !secondStart.overflow, secondStart.partialValue + 999 >= nowMilliseconds - maximumAge,
            secondStart.partialValue <= nowMilliseconds + maximumAge
        else {
            throw .invalidDPoPProof("the DPoP proof's iat is more than \(Self.describe(policy.maximumAge)) from now; make a fresh proof for each request")
        }
        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= DPoPProof.maximumJTILength else {
            throw .invalidDPoPProof("the DPoP proof needs a jti of 1-\(DPoPProof.maximumJTILength) characters")
        }
        let nonce = claims["nonce"]
        if nonce != nil, nonce?.stringValue == nil {
            throw .invalidDPoPProof("the DPoP proof's nonce must be a string")
        }
        if let serverNonces = policy.serverNonces {
            guard let value = nonce?.stringValue, serverNonces.isCurrent(value, now: now) else {
                throw EKeyError(.useDPoPNonce, "a current server nonce is required; retry with the DPoP-Nonce header's value as the proof's nonce")
            }
        }
        if let accessToken = request.accessToken {
            try checkTokenLink(claims: claims, accessToken: accessToken, trace: request.trace)
        }
        let thumbprint = proofKey.thumbprint
        if let bound = request.boundThumbprint {
            guard constantTimeEqual(Array(thumbprint.utf8), Array(bound.utf8)) else {
                throw .invalidDPoPProof("the DPoP proof key is not the key the token is bound to (cnf.jkt)")
            }
        }
        return VerifiedProof(jti: jti, thumbprint: thumbprint, jwk: jwk, issuedAt: issuedAt)
    }

    /// `5 s`, or `1500 ms` for a duration that is not whole seconds.
    static func describe(_ duration: Duration) -> String {
        let milliseconds = milliseconds(duration)
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }

    /// Whole milliseconds of a non-negative duration.
    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The public key in the proof header's `jwk` (public members only), from the cache when
    /// this exact header text was read before.
    private func key(of jws: JWSCompact, headerText: Substring) throws(EKeyError) -> DPoPProofKey {
        let headerText = String(headerText)
        if let known = proofKeys.value(for: headerText) {
            return known
        }
        guard let jwkValue = jws.header["jwk"] else {
            throw .invalidDPoPProof("the DPoP proof header has no \"jwk\"")
        }
        let entry: DPoPProofKey
        do {
            let jwk = try JWK(parsing: jwkValue, context: .publicOnly)
            entry = .init(jwk: jwk, key: try jwk.publicKey(), thumbprint: jwk.thumbprint)
        } catch {
            throw .invalidDPoPProof("the DPoP proof is refused: \(error.reason)")
        }
        proofKeys.remember(entry, for: headerText)
        return entry
    }

    private func checkTokenLink(claims: [String: JSONValue], accessToken: String, trace: String?) throws(EKeyError) {
        if let ath = claims["ath"] {
            guard let value = ath.stringValue,
                constantTimeEqual(Array(value.utf8), Array(EKeyToken.accessTokenHash(accessToken).utf8))
            else { throw .invalidDPoPProof("the DPoP proof's ath is not the SHA-256 of the token sent") }
            return
        }
        if policy.requireAccessTokenHash || policy.serverNonces != nil {
            throw .invalidDPoPProof("the DPoP proof needs ath = base64url(SHA-256(token))")
        }
        guard let trace, let nonce = claims["nonce"]?.stringValue, nonce == trace else {
            throw .invalidDPoPProof("the DPoP proof needs ath = base64url(SHA-256(token)) (or, from E-Key prototype clients, nonce = the token's trace)")
        }
    }
}
