public import Foundation

/// `gateway`: the verifier gateway (docs/spec/gateway.md). Keys and defaults: ``ConfigKeys/Gateway``.
public struct GatewayConfig: Sendable, Hashable {
    /// `listen`.
    public var listen: ListenAddress
    /// `admin_listen`: metrics and health, plain HTTP.
    public var adminListen: ListenAddress
    /// `tls`: the listener's TLS; `client_ca` validates mTLS-bound callers.
    public var tls: TLSSettings
    /// `connections`: limits on the main listener's downstream connections.
    public var connections: ConnectionsConfig
    /// `issuer`: the `iss` that tokens must carry.
    public var issuer: String
    /// `jwks`: where the issuers' public keys are fetched.
    public var jwks: JWKSClientConfig
    /// `clock_skew` on token `exp` and `iat`.
    public var clockSkew: Duration
    /// `dpop`: DPoP proof checks.
    public var dpop: DPoPConfig
    /// `timeouts` towards upstreams (routes may override key by key).
    public var timeouts: TimeoutsConfig
    /// `routes`: longest matching `prefix` wins.
    public var routes: [RouteConfig]
    /// `authorize`: verify-only mode for a proxy in front; `nil` (absent) means off.
    public var authorize: AuthorizeConfig?

    /// Creates a gateway configuration.
    public init(
        listen: ListenAddress = ConfigKeys.Gateway.listen.defaultValue,
        adminListen: ListenAddress = ConfigKeys.Gateway.adminListen.defaultValue, tls: TLSSettings,
        connections: ConnectionsConfig = ConnectionsConfig(), issuer: String, jwks: JWKSClientConfig, clockSkew: Duration = ConfigKeys.Gateway.clockSkew.defaultValue,
        dpop: DPoPConfig = DPoPConfig(),
        timeouts: TimeoutsConfig = TimeoutsConfig(), routes: [RouteConfig], authorize: AuthorizeConfig? = nil
    ) {
        self.listen = listen
        self.adminListen = adminListen
        self.tls = tls
        self.connections = connections
        self.issuer = issuer
        self.jwks = jwks
        self.clockSkew = clockSkew
        self.dpop = dpop
        self.timeouts = timeouts
        self.routes = routes
        self.authorize = authorize
    }
}

/// `gateway.jwks`: the publisher's JWKS endpoint and, for HTTPS, the trust and client files.
public struct JWKSClientConfig: Sendable, Hashable {
    /// `url` of the key set (`https://host:7443/.well-known/jwks.json`).
    public var url: URL
    /// `ca`: PEM CA bundle for the publisher's certificate (system trust when absent).
    public var ca: String?
    /// `cert`: client certificate for mutual TLS (with ``key``).
    public var cert: String?
    /// `key`: client key for mutual TLS (with ``cert``).
    public var key: String?

    /// Creates JWKS client settings.
    public init(url: URL, ca: String? = nil, cert: String? = nil, key: String? = nil) {
        self.url = url
        self.ca = ca
        self.cert = cert
        self.key = key
    }
}

/// `gateway.dpop`: DPoP proof checks. Keys and defaults: ``ConfigKeys/Gateway/DPoP``.
public struct DPoPConfig: Sendable, Hashable {
    /// `max_age`: how far a proof's `iat` may be from now.
    public var maxAge: Duration
    /// `require_ath`: refuse proofs without `ath`, the prototype's `nonce` = trace form.
    public var requireATH: Bool
    /// `nonce`: demand a server nonce (RFC 9449 §9).
    public var nonce: Bool
    /// `nonce_window`: lifetime of one nonce window.
    public var nonceWindow: Duration
    /// `nonce_secret_file`: HMAC secret of the nonces, at least 32 bytes; required with ``nonce``.
    public var nonceSecretFile: String?

    /// Creates DPoP settings.
    public init(
        maxAge: Duration = ConfigKeys.Gateway.DPoP.maxAge.defaultValue,
        requireATH: Bool = ConfigKeys.Gateway.DPoP.requireATH.defaultValue,
        nonce: Bool = ConfigKeys.Gateway.DPoP.nonce.defaultValue,
        nonceWindow: Duration = ConfigKeys.Gateway.DPoP.nonceWindow.defaultValue,
        nonceSecretFile: String? = ConfigKeys.Gateway.DPoP.nonceSecretFile.defaultValue
    ) {
        self.maxAge = maxAge
        self.requireATH = requireATH
        self.nonce = nonce
        self.nonceWindow = nonceWindow
        self.nonceSecretFile = nonceSecretFile
    }
}

/// A service's `connections`: limits on the downstream connections of its main listener,
/// so idle or stalled clients cannot pin memory. Keys and defaults: ``ConfigKeys/Connections``.
public struct ConnectionsConfig: Sendable, Hashable {
    /// `handshake`: to finish the TLS handshake and protocol negotiation.
    public var handshake: Duration
    /// `idle`: with no request in flight before a connection is closed (HTTP/2: GOAWAY, and
    /// 10 s later a hard close), and the longest wait for a request's body.
    public var idle: Duration

    /// Creates limits; the defaults are the production ones (10 s, 60 s).
    public init(handshake: Duration = ConfigKeys.Connections.handshake.defaultValue, idle: Duration = ConfigKeys.Connections.idle.defaultValue) {
        self.handshake = handshake
        self.idle = idle
    }
}

/// `timeouts`: limits on upstream calls. Keys and defaults: ``ConfigKeys/Timeouts``.
public struct TimeoutsConfig: Sendable, Hashable {
    /// `connect`: to open the upstream connection.
    public var connect: Duration
    /// `first_byte`: from request sent to response head.
    public var firstByte: Duration
    /// `idle`: longest pause while streaming either body.
    public var idle: Duration

    /// Creates timeouts.
    public init(
        connect: Duration = ConfigKeys.Timeouts.connect.defaultValue,
        firstByte: Duration = ConfigKeys.Timeouts.firstByte.defaultValue,
        idle: Duration = ConfigKeys.Timeouts.idle.defaultValue
    ) {
        self.connect = connect
        self.firstByte = firstByte
        self.idle = idle
    }
}

/// `gateway.routes[]`: one upstream behind the gateway.
public struct RouteConfig: Sendable, Hashable {
    /// `prefix`: matches whole path segments (`/payments` matches `/payments/42`, not `/paymentsx`).
    public var prefix: String
    /// `upstream`: `http://` (HTTP/1.1), `https://` (TLS, h2 or http/1.1) or `h2c://` (HTTP/2 prior knowledge).
    public var upstream: URL
    /// `audience`: the `aud` tokens must carry for this route.
    public var audience: String
    /// `public_origin`: scheme, host and port clients use; DPoP `htu` is this plus the path.
    public var publicOrigin: URL
    /// `upstream_ca`: PEM CA bundle for an `https://` upstream (system trust when absent).
    public var upstreamCA: String?
    /// The route's effective timeouts: its own `timeouts` keys, the gateway's for the rest.
    public var timeouts: TimeoutsConfig

    /// Creates a route.
    public init(
        prefix: String, upstream: URL, audience: String, publicOrigin: URL, upstreamCA: String? = nil,
        timeouts: TimeoutsConfig = TimeoutsConfig()
    ) {
        self.prefix = prefix
        self.upstream = upstream
        self.audience = audience
        self.publicOrigin = publicOrigin
        self.upstreamCA = upstreamCA
        self.timeouts = timeouts
    }
}
