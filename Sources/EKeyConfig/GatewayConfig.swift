public import Foundation

/// `gateway`: the verifier gateway (docs/spec/gateway.md).
public struct GatewayConfig: Sendable, Hashable {
    /// `listen` (default `0.0.0.0:9443`).
    public var listen: ListenAddress
    /// `admin_listen` (default `127.0.0.1:9102`).
    public var adminListen: ListenAddress
    /// `tls`: the listener's TLS; `client_ca` validates mTLS-bound callers.
    public var tls: TLSSettings
    /// `issuer`: the `iss` that tokens must carry.
    public var issuer: String
    /// `jwks`: where the issuers' public keys are fetched.
    public var jwks: JWKSClientConfig
    /// `clock_skew` on token `exp` and `iat` (default 5 s).
    public var clockSkew: Duration
    /// `dpop`: DPoP proof checks.
    public var dpop: DPoPConfig
    /// `timeouts` towards upstreams (routes may override key by key).
    public var timeouts: TimeoutsConfig
    /// `routes`: longest matching `prefix` wins.
    public var routes: [RouteConfig]

    /// Creates a gateway configuration.
    public init(
        listen: ListenAddress = ListenAddress(host: "0.0.0.0", port: 9443),
        adminListen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9102), tls: TLSSettings,
        issuer: String, jwks: JWKSClientConfig, clockSkew: Duration = .seconds(5), dpop: DPoPConfig = DPoPConfig(),
        timeouts: TimeoutsConfig = TimeoutsConfig(), routes: [RouteConfig]
    ) {
        self.listen = listen
        self.adminListen = adminListen
        self.tls = tls
        self.issuer = issuer
        self.jwks = jwks
        self.clockSkew = clockSkew
        self.dpop = dpop
        self.timeouts = timeouts
        self.routes = routes
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

/// `gateway.dpop`: DPoP proof checks.
public struct DPoPConfig: Sendable, Hashable {
    /// `max_age`: how far a proof's `iat` may be from now (default 5 s).
    public var maxAge: Duration
    /// `require_ath`: refuse the prototype's `nonce` = trace form (default false).
    public var requireATH: Bool
    /// `nonce`: demand a server nonce (RFC 9449 §9; default false).
    public var nonce: Bool
    /// `nonce_window`: lifetime of one nonce window (default 60 s).
    public var nonceWindow: Duration
    /// `nonce_secret_file`: HMAC secret of the nonces, at least 32 bytes; required with ``nonce``.
    public var nonceSecretFile: String?

    /// Creates DPoP settings.
    public init(
        maxAge: Duration = .seconds(5), requireATH: Bool = false, nonce: Bool = false,
        nonceWindow: Duration = .seconds(60), nonceSecretFile: String? = nil
    ) {
        self.maxAge = maxAge
        self.requireATH = requireATH
        self.nonce = nonce
        self.nonceWindow = nonceWindow
        self.nonceSecretFile = nonceSecretFile
    }
}

/// `timeouts`: limits on upstream calls.
public struct TimeoutsConfig: Sendable, Hashable {
    /// `connect`: to open the upstream connection (default 2 s).
    public var connect: Duration
    /// `first_byte`: from request sent to response head (default 30 s).
    public var firstByte: Duration
    /// `idle`: longest pause while streaming either body (default 60 s).
    public var idle: Duration

    /// Creates timeouts.
    public init(connect: Duration = .seconds(2), firstByte: Duration = .seconds(30), idle: Duration = .seconds(60)) {
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
