public import EKeyProtocol

/// The RFC 8414 metadata at `/.well-known/oauth-authorization-server` (docs/spec/issuer.md).
public struct AuthorizationServerMetadata: Sendable, Hashable {
    public let issuer: String
    public let tokenEndpoint: String
    public let jwksURI: String

    /// Creates the metadata of the issuer at `issuerURL`.
    public init(issuerURL: String, jwksURI: String) {
        self.issuer = issuerURL
        self.tokenEndpoint = issuerURL + "/token"
        self.jwksURI = jwksURI
    }

    /// The document.
    public var jsonValue: JSONValue {
        .object([
            "issuer": .string(issuer),
            "token_endpoint": .string(tokenEndpoint),
            "jwks_uri": .string(jwksURI),
            "dpop_signing_alg_values_supported": .array([.string("ES256"), .string("EdDSA")]),
            "tls_client_certificate_bound_access_tokens": .bool(true),
            "token_endpoint_auth_methods_supported": .array([.string("tls_client_auth")]),
        ])
    }
}
