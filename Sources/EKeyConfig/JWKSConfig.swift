/// `jwks`: the JWKS publisher (docs/spec/publisher.md).
public struct JWKSConfig: Sendable, Hashable {
    /// `listen` (default `0.0.0.0:7443`).
    public var listen: ListenAddress
    /// `admin_listen` (default `127.0.0.1:9103`).
    public var adminListen: ListenAddress
    /// `tls`: the listener's TLS; `client_ca` validates issuers and admins.
    public var tls: TLSSettings
    /// `authorized_issuers`: identity globs allowed to register keys.
    public var authorizedIssuers: [String]
    /// `admins`: identity globs allowed to revoke, export and import keys.
    public var admins: [String]
    /// `cache_max_age` of the JWKS response (default 30 s).
    public var cacheMaxAge: Duration
    /// `retain`: how long a key stays published after its `not_after`, and how long a
    /// revoked kid is remembered and refused (default 24 h).
    public var retain: Duration

    /// Creates a publisher configuration.
    public init(
        listen: ListenAddress = ListenAddress(host: "0.0.0.0", port: 7443),
        adminListen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9103), tls: TLSSettings,
        authorizedIssuers: [String] = [], admins: [String] = [], cacheMaxAge: Duration = .seconds(30),
        retain: Duration = .seconds(86_400)
    ) {
        self.listen = listen
        self.adminListen = adminListen
        self.tls = tls
        self.authorizedIssuers = authorizedIssuers
        self.admins = admins
        self.cacheMaxAge = cacheMaxAge
        self.retain = retain
    }
}
