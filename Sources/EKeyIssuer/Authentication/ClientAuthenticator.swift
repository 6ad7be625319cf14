public import EKeyConfig
public import EKeyProtocol
public import EKeyServer
public import EKeyStore

/// Establishes who calls `POST /token` (docs/spec/issuer.md), strongest method first:
/// 1. a TLS client certificate (identity: SPIFFE ID or `x509:<CN>`);
/// 2. a DPoP proof signed by a key registered in `issuer.clients` (`client:<id>`);
/// 3. a `subject_token` from a configured IdP plus a DPoP proof (`oidc:<idp>:<subject>`).
///
/// A `subject_token` is only accepted from callers without a stronger credential, so one
/// request never carries two identities. Every DPoP proof sent is verified (`htm` POST,
/// `htu` = issuer URL + `/token`, `iat` within the skew, signature) and its `jti` is spent,
/// whatever the method; a failing proof is 401 `invalid_client`.
public struct ClientAuthenticator: Sendable {
    private let tokenEndpoint: String
    /// `issuer.clock_skew` in whole seconds, as token and proof times count.
    private let clockSkew: Int64
    private let registeredKeys: [String: String]
    private let identityProviders: IdentityProviders
    private let replayGuard: ProofReplayGuard
    private let verifier: DPoPProofVerifier

    /// Creates an authenticator.
    ///
    /// - Parameters:
    ///   - clockSkew: `issuer.clock_skew`, counted in whole seconds and at least 1 s: how far
    ///     a DPoP proof's `iat` and an IdP token's `exp`/`nbf` may be from now.
    ///   - store: where spent proof `jti`s are remembered (``ProofReplayGuard``), for twice
    ///     the skew plus a second.
    public init(
        tokenEndpoint: String, clockSkew: Duration, clients: [ClientConfig], identityProviders: IdentityProviders,
        store: any UsageStore, metrics: MetricsRegistry
    ) {
        let skew = max(1, clockSkew.components.seconds)
        self.tokenEndpoint = tokenEndpoint
        self.clockSkew = skew
        self.registeredKeys = Dictionary(clients.map { ($0.jkt, $0.id) }, uniquingKeysWith: { first, _ in first })
        self.identityProviders = identityProviders
        self.replayGuard = ProofReplayGuard(store: store, window: .seconds(2 * skew + 1), metrics: metrics)
        self.verifier = DPoPProofVerifier(policy: .init(maximumAge: .seconds(skew)))
    }

    /// Authenticates a request.
    ///
    /// - Parameters:
    ///   - peer: the TLS client identity of the connection, if any.
    ///   - proofs: the values of the request's `DPoP` headers.
    ///   - subjectToken: the body's `subject_token`, if any.
    /// - Throws: 401 `invalid_client` (no or failed authentication), 400 `invalid_request`
    ///   (several DPoP headers, ambiguous credentials, token exchange without a proof),
    ///   503 when the replay store is down.
    public func authenticate(peer: PeerIdentity?, proofs: [String], subjectToken: String?, now: Int64) async throws(EKeyError)
        -> AuthenticatedClient
    {
        switch try begin(peer: peer, proofs: proofs, subjectToken: subjectToken, now: now) {
        case .authenticated(let client):
            return client
        case .proofToSpend(let client, let proof):
            try await replayGuard.checkFirstUse(of: proof)
            return client
        case .exchange(let subjectToken, let proof):
            let identity = try await identityProviders.identity(of: subjectToken, now: now, clockSkew: clockSkew)
            guard let proof else {
                throw EKeyError(.invalidRequest, "token exchange needs a DPoP proof to bind the token to; add a DPoP header")
            }
            try await replayGuard.checkFirstUse(of: proof)
            return AuthenticatedClient(identity: identity, method: .tokenExchange, certificateSHA256: nil, proofKey: proof.jwk)
        }
    }

    /// How far authentication gets without waiting for the store or an identity provider.
    public enum Progress: Sendable {
        /// Done: a client certificate and no proof.
        case authenticated(AuthenticatedClient)
        /// Done once the store confirms the proof's first use.
        case proofToSpend(AuthenticatedClient, DPoPProofVerifier.VerifiedProof)
        /// A subject token for an identity provider to check (and the proof, if any).
        case exchange(subjectToken: String, proof: DPoPProofVerifier.VerifiedProof?)
    }

    /// The checks that need no I/O, in order; throws the first that fails.
    public func begin(peer: PeerIdentity?, proofs: [String], subjectToken: String?, now: Int64) throws(EKeyError) -> Progress {
        guard proofs.count <= 1 else {
            throw EKeyError(.invalidRequest, "send at most one DPoP header")
        }
        let proof = try proofs.first.map { (text: String) throws(EKeyError) in try verifyProof(text, now: now) }
        let registeredID = proof.flatMap { registeredKeys[$0.thumbprint] }
        let client: AuthenticatedClient
        if let peer {
            guard subjectToken == nil else {
                throw EKeyError(.invalidRequest, "subject_token is for callers without a client certificate; send one or the other")
            }
            client = AuthenticatedClient(identity: peer.identity, method: .mtls, certificateSHA256: peer.certificateSHA256, proofKey: proof?.jwk)
        } else if let registeredID {
            guard subjectToken == nil else {
                throw EKeyError(.invalidRequest, "subject_token is for callers without a registered DPoP key; send one or the other")
            }
            client = AuthenticatedClient(identity: "client:" + registeredID, method: .registeredKey, certificateSHA256: nil, proofKey: proof?.jwk)
        } else if let subjectToken {
            return .exchange(subjectToken: subjectToken, proof: proof)
        } else if proof != nil {
            throw EKeyError(.invalidClient, "the DPoP proof key is not registered in issuer.clients; register its thumbprint or authenticate with a client certificate")
        } else {
            throw EKeyError(.invalidClient, "no client authentication: present a client certificate, a DPoP proof by a registered key, or a subject_token with a DPoP proof")
        }
        guard let proof else { return .authenticated(client) }
        return .proofToSpend(client, proof)
    }

    private func verifyProof(_ text: String, now: Int64) throws(EKeyError) -> DPoPProofVerifier.VerifiedProof {
        do {
            return try verifier.verify(text, for: .init(method: "POST", url: tokenEndpoint), now: now)
        } catch {
            throw EKeyError(.invalidClient, "the DPoP proof is refused: \(error.reason)")
        }
    }
}
