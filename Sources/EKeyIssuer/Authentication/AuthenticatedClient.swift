public import EKeyProtocol

/// A caller of `POST /token` whose identity was established (docs/spec/issuer.md).
public struct AuthenticatedClient: Sendable {
    /// How the caller authenticated, strongest first.
    public enum Method: String, Sendable {
        /// A TLS client certificate validated against `issuer.tls.client_ca`.
        case mtls
        /// A DPoP proof signed by a key registered in `issuer.clients`.
        case registeredKey = "registered_key"
        /// An external OIDC JWT (`subject_token`) plus a DPoP proof.
        case tokenExchange = "token_exchange"
    }

    /// `spiffe://...`, `x509:<CN>`, `client:<id>` or `oidc:<idp>:<subject>`.
    public let identity: String
    public let method: Method
    /// SHA-256 of the client certificate's DER (mTLS callers).
    public let certificateSHA256: [UInt8]?
    /// The key of the request's verified DPoP proof, if one was sent.
    public let proofKey: JWK?
}
