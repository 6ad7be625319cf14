public import Foundation

/// `issuer`: the token issuer (docs/spec/issuer.md). Keys and defaults: ``ConfigKeys/Issuer``.
public struct IssuerConfig: Sendable, Hashable {
    /// `listen`.
    public var listen: ListenAddress
    /// `admin_listen`: metrics and health, plain HTTP.
    public var adminListen: ListenAddress
    /// `issuer_url`: the tokens' `iss`; the token endpoint is this plus `/token`.
    public var issuerURL: URL
    /// `jwks_uri` for the RFC 8414 metadata (default: the publisher's URL with path `/.well-known/jwks.json`).
    public var jwksURI: URL
    /// `clock_skew` allowed on DPoP proofs' `iat`.
    public var clockSkew: Duration
    /// `tls`: the listener's TLS; `client_ca` validates mTLS callers.
    public var tls: TLSSettings
    /// `connections`: limits on the main listener's downstream connections.
    public var connections: ConnectionsConfig
    /// `signing`: the token signing key.
    public var signing: SigningConfig
    /// `publisher`: where signing keys are registered (HTTP/2 over mutual TLS).
    public var publisher: PublisherClientConfig
    /// `clients`: DPoP keys registered to client identities (`client:<id>`).
    public var clients: [ClientConfig]
    /// `idps`: OIDC identity providers accepted for token exchange.
    public var idps: [IdPConfig]
    /// `templates`: the issuance policy; nothing matches → denied.
    public var templates: [TemplateConfig]

    /// Creates an issuer configuration.
    public init(
        listen: ListenAddress = ConfigKeys.Issuer.listen.defaultValue,
        adminListen: ListenAddress = ConfigKeys.Issuer.adminListen.defaultValue,
        issuerURL: URL, jwksURI: URL, clockSkew: Duration = ConfigKeys.Issuer.clockSkew.defaultValue, tls: TLSSettings,
        connections: ConnectionsConfig = ConnectionsConfig(), signing: SigningConfig = SigningConfig(), publisher: PublisherClientConfig, clients: [ClientConfig] = [],
        idps: [IdPConfig] = [], templates: [TemplateConfig] = []
    ) {
        self.listen = listen
        self.adminListen = adminListen
        self.issuerURL = issuerURL
        self.jwksURI = jwksURI
        self.clockSkew = clockSkew
        self.tls = tls
        self.connections = connections
        self.signing = signing
        self.publisher = publisher
        self.clients = clients
        self.idps = idps
        self.templates = templates
    }
}

/// `issuer.signing`: how tokens are signed. Keys and defaults: ``ConfigKeys/Issuer/Signing``.
public struct SigningConfig: Sendable, Hashable {
    /// `alg`. With ``keyFile`` the key's type decides; an explicit `alg` that
    /// disagrees with the key is refused when the key is read.
    public var alg: KeyAlgorithm
    /// `true` when `alg` was written in the configuration rather than defaulted.
    public var isAlgorithmExplicit: Bool
    /// `rotate_every` for keys generated in memory; unused with ``keyFile``.
    public var rotateEvery: Duration
    /// `key_file`: a shared PEM key (SEC1 or PKCS#8; P-256 or Ed25519) instead of generated ones.
    public var keyFile: String?

    /// Creates signing settings.
    public init(
        alg: KeyAlgorithm = ConfigKeys.Issuer.Signing.alg.defaultValue, isAlgorithmExplicit: Bool = false,
        rotateEvery: Duration = ConfigKeys.Issuer.Signing.rotateEvery.defaultValue,
        keyFile: String? = ConfigKeys.Issuer.Signing.keyFile.defaultValue
    ) {
        self.alg = alg
        self.isAlgorithmExplicit = isAlgorithmExplicit
        self.rotateEvery = rotateEvery
        self.keyFile = keyFile
    }
}

/// A token signing algorithm the issuer supports.
public enum KeyAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// ECDSA P-256 with SHA-256.
    case es256 = "ES256"
    /// Ed25519.
    case edDSA = "EdDSA"
}

/// `issuer.publisher`: the JWKS publisher's internal endpoint and the issuer's client certificate.
public struct PublisherClientConfig: Sendable, Hashable {
    /// `url`: the publisher's base URL (`https://host:7443`).
    public var url: URL
    /// `ca`: PEM CA bundle that the publisher's certificate must chain to.
    public var ca: String
    /// `cert`: the issuer's client certificate (PEM).
    public var cert: String
    /// `key`: the issuer's client key (PEM).
    public var key: String

    /// Creates publisher client settings.
    public init(url: URL, ca: String, cert: String, key: String) {
        self.url = url
        self.ca = ca
        self.cert = cert
        self.key = key
    }
}

/// `issuer.clients[]`: a DPoP key registered to a client identity.
public struct ClientConfig: Sendable, Hashable {
    /// `id`: the identity becomes `client:<id>`.
    public var id: String
    /// `jkt`: RFC 7638 SHA-256 thumbprint of the client's public key, base64url (43 characters).
    public var jkt: String

    /// Creates a client registration.
    public init(id: String, jkt: String) {
        self.id = id
        self.jkt = jkt
    }
}

/// `issuer.idps[]`: an OIDC identity provider whose JWTs are accepted for token exchange.
public struct IdPConfig: Sendable, Hashable {
    /// Where the IdP's signing keys come from.
    public enum KeySource: Sendable, Hashable {
        /// `jwks_uri`: fetched over HTTPS.
        case uri(URL)
        /// `jwks_file`: a JWKS JSON file.
        case file(String)
    }

    /// `name`: the identity becomes `oidc:<name>:<subject>`.
    public var name: String
    /// `issuer`: must equal the subject token's `iss`.
    public var issuer: String
    /// `audience`: the subject token's `aud` must contain it.
    public var audience: String
    /// `jwks_uri` or `jwks_file` (exactly one).
    public var keys: KeySource
    /// `subject_claim`: the claim that names the subject.
    public var subjectClaim: String

    /// Creates an identity provider entry.
    public init(
        name: String, issuer: String, audience: String, keys: KeySource,
        subjectClaim: String = ConfigKeys.Issuer.IdP.subjectClaim.defaultValue
    ) {
        self.name = name
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.subjectClaim = subjectClaim
    }

    /// `jwks_uri`, when the keys are fetched.
    public var jwksURI: URL? {
        if case .uri(let url) = keys { return url }
        return nil
    }

    /// `jwks_file`, when the keys are read from a file.
    public var jwksFile: String? {
        if case .file(let path) = keys { return path }
        return nil
    }
}

/// How a token is bound to its holder.
public enum Binding: String, Sendable, Hashable, CaseIterable {
    /// DPoP (RFC 9449): bound to a key the client proves it holds.
    case dpop = "DPoP"
    /// Mutual TLS (RFC 8705): bound to the client certificate.
    case mtls = "mTLS"
}

/// `issuer.templates[]`: one rule of the issuance policy. Keys and defaults: ``ConfigKeys/Issuer/Template``.
public struct TemplateConfig: Sendable, Hashable {
    /// `name`: used in metrics and logs.
    public var name: String
    /// `subjects`: identity globs (`*` matches any run of characters).
    public var subjects: [String]
    /// `audiences`: allowed `aud` values.
    public var audiences: [String]
    /// `actions`: allowed capability actions (`METHOD:/path`, with `:name` and final `/*`).
    public var actions: [String]
    /// `max_limit`: the highest use count a token may carry.
    public var maxLimit: Int
    /// `max_ttl`: the longest lifetime, whole seconds from 1 to 60.
    public var maxTTL: Duration
    /// `binds`: allowed binding modes (non-empty).
    public var binds: Set<Binding>
    /// `rate_per_minute`: issuance limit per identity and template, if any.
    public var ratePerMinute: Int?
    /// `delegate_subjects`: globs of subjects a caller may ask for instead of its own identity.
    public var delegateSubjects: [String]

    /// Creates a policy template.
    public init(
        name: String, subjects: [String], audiences: [String], actions: [String],
        maxLimit: Int = ConfigKeys.Issuer.Template.maxLimit.defaultValue,
        maxTTL: Duration = ConfigKeys.Issuer.Template.maxTTL.defaultValue, binds: Set<Binding>,
        ratePerMinute: Int? = ConfigKeys.Issuer.Template.ratePerMinute.defaultValue,
        delegateSubjects: [String] = ConfigKeys.Issuer.Template.delegateSubjects.defaultValue
    ) {
        self.name = name
        self.subjects = subjects
        self.audiences = audiences
        self.actions = actions
        self.maxLimit = maxLimit
        self.maxTTL = maxTTL
        self.binds = binds
        self.ratePerMinute = ratePerMinute
        self.delegateSubjects = delegateSubjects
    }
}
