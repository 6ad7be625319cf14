public import EKeyProtocol
public import EKeyServer

/// Step 3: the token's binding holds. DPoP: exactly one `DPoP` header whose proof passes
/// every RFC 9449 check against the route's public origin + path, with `ath` (or the E-Key
/// prototype's `nonce` = trace unless `require_ath`), a current server nonce in nonce
/// mode, and the key the token names in `cnf.jkt`. mTLS: the connection's client
/// certificate has the SHA-256 the token names.
public struct BindingVerification: Sendable {
    let proofs: DPoPProofVerifier

    /// Creates the step with the gateway's DPoP policy.
    public init(proofs: DPoPProofVerifier) {
        self.proofs = proofs
    }

    /// What the binding check established.
    public enum Evidence: Sendable {
        /// A verified DPoP proof (its `jti` goes to the replay check).
        case proof(DPoPProofVerifier.VerifiedProof)
        /// The mTLS client certificate matched.
        case certificate
    }

    /// Checks the binding of `token` for a request.
    public func verify(
        _ token: VerifiedEKey, compact: String, scheme: AuthorizationScheme, method: String, path: String, route: Route,
        dpopHeaders: [String], peer: PeerIdentity?, nowMilliseconds: Int64
    ) throws(Rejection) -> Evidence {
        switch token.binding {
        case .dpop(let thumbprint):
            guard !dpopHeaders.isEmpty else {
                throw Rejection(.invalidDPoPProof("this token is DPoP-bound: send a DPoP proof in the DPoP header"), scheme: scheme, outcome: .invalidProof, token: token.claims)
            }
            guard dpopHeaders.count == 1 else {
                throw Rejection(EKeyError(.invalidRequest, "send exactly one DPoP header"), scheme: scheme, outcome: .invalidRequest, token: token.claims)
            }
            let request = DPoPProofVerifier.Request(
                method: method, url: route.publicOrigin + path, accessToken: compact, trace: token.claims.trace, boundThumbprint: thumbprint)
            do {
                return .proof(try proofs.verify(dpopHeaders[0], for: request, nowMilliseconds: nowMilliseconds))
            } catch {
                var rejection = Rejection(error, scheme: scheme, outcome: VerificationOutcome(refusing: error), token: token.claims)
                if error.code == .useDPoPNonce, let nonces = proofs.policy.serverNonces {
                    rejection.headers.append(("DPoP-Nonce", nonces.nonce(now: nowMilliseconds / 1000)))
                }
                throw rejection
            }
        case .mtls(let expected):
            guard let peer else {
                throw Rejection(
                    .certificateBindingFailed("this token is bound to a TLS client certificate: connect with that certificate"),
                    scheme: scheme, outcome: .invalidProof, token: token.claims)
            }
            guard constantTimeEqual(peer.certificateSHA256, expected) else {
                throw Rejection(
                    .certificateBindingFailed("the TLS client certificate is not the one this token is bound to (cnf.x5t#S256)"),
                    scheme: scheme, outcome: .invalidProof, token: token.claims)
            }
            return .certificate
        }
    }
}
