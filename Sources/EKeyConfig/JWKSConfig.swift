/// `jwks`: the JWKS publisher (docs/spec/publisher.md). Keys and defaults: ``ConfigKeys/JWKS``.
public struct JWKSConfig: Sendable, Hashable {
    /// `listen`.
    public var listen: ListenAddress
    /// `admin_listen`: metrics and health, plain HTTP.
    public var adminListen: ListenAddress
    /// `tls`: the listener's TLS; `client_ca` validates issuers and admins.
    public var tls: TLSSettings
    /// `connections`: limits on the main listener's downstream connections.
    public var connections: ConnectionsConfig
    /// `authorized_issuers`: identity globs allowed to register keys.
    public var authorizedIssuers: [String]
    /// `admins`: identity globs allowed to revoke, export and import keys.
    public var admins: [String]
    /// `cache_max_age` of the JWKS response.
    public var cacheMaxAge: Duration
    /// `retain`: how long a key stays published after its `not_after`, and how long a
    /// revoked kid is remembered and refused.
    public var retain: Duration

    /// Creates a publisher configuration.
    public init(
        listen: ListenAddress = ConfigKeys.JWKS.listen.defaultValue,
        adminListen: ListenAddress = ConfigKeys.JWKS.adminListen.defaultValue, tls: TLSSettings,
        connections: ConnectionsConfig = ConnectionsConfig(), authorizedIssuers: [String] = ConfigKeys.JWKS.authorizedIssuers.defaultValue,
        admins: [String] = ConfigKeys.JWKS.admins.defaultValue,
        cacheMaxAge: Duration = ConfigKeys.JWKS.cacheMaxAge.defaultValue,
        retain: Duration = ConfigKeys.JWKS.retain.defaultValue
    ) {
        self.listen = listen
        self.adminListen = adminListen
        self.tls = tls
        self.connections = connections
        self.authorizedIssuers = authorizedIssuers
        self.admins = admins
        self.cacheMaxAge = cacheMaxAge
        self.retain = retain
    }
}
