public import Foundation

/// The whole stack's configuration: one file, a section per service (docs/configuration.md).
///
/// Each service section is optional in the file; a service asks for its own with
/// ``require(_:)``, which fails with a message naming the missing section.
public struct StackConfig: Sendable, Hashable {
    /// `store`: the usage and replay store shared by all services (defaults when absent).
    public var store: StoreConfig
    /// `issuer`: the token issuer, if configured.
    public var issuer: IssuerConfig?
    /// `gateway`: the verifier gateway, if configured.
    public var gateway: GatewayConfig?
    /// `jwks`: the JWKS publisher, if configured.
    public var jwks: JWKSConfig?

    /// `tracing`: where spans go (off when absent).
    public var tracing: TracingConfig

    /// Creates a stack configuration.
    public init(
        store: StoreConfig = StoreConfig(), issuer: IssuerConfig? = nil, gateway: GatewayConfig? = nil,
        jwks: JWKSConfig? = nil, tracing: TracingConfig = TracingConfig()
    ) {
        self.store = store
        self.issuer = issuer
        self.gateway = gateway
        self.jwks = jwks
        self.tracing = tracing
    }

    /// The names of the sections present, in file order: `store` always, then the services.
    public var sections: [String] {
        ["store"] + [issuer.map { _ in "issuer" }, gateway.map { _ in "gateway" }, jwks.map { _ in "jwks" }]
            .compactMap { $0 }
    }

    /// The service section `Section` (``IssuerConfig``, ``GatewayConfig`` or ``JWKSConfig``),
    /// or an error naming the missing section and the service that needs it.
    ///
    /// ```swift
    /// let gateway = try config.require(GatewayConfig.self)
    /// ```
    public func require<Section: ServiceSection>(_ section: Section.Type = Section.self) throws(ConfigError) -> Section {
        guard let settings = self[keyPath: Section.place] else {
            throw ConfigError(
                path: Section.name,
                message: "ekey-\(Section.name) needs a '\(Section.name):' section and the config file has none; add it (see docs/configuration.md)")
        }
        return settings
    }
}

/// A service's section of the stack file (``IssuerConfig``, ``GatewayConfig``,
/// ``JWKSConfig``): its name, which prefixes its keys and names its executable
/// (`ekey-<name>`), and where ``StackConfig`` holds it.
public protocol ServiceSection: Sendable {
    /// The section's name in the file: `issuer`, `gateway` or `jwks`.
    static var name: String { get }
    /// Where ``StackConfig`` holds the section (`nil` when the file has none).
    static var place: KeyPath<StackConfig, Self?> { get }

    /// `listen`: the service's main listener.
    var listen: ListenAddress { get }
    /// `admin_listen`: metrics and health, plain HTTP.
    var adminListen: ListenAddress { get }
    /// `tls`: the main listener's TLS.
    var tls: TLSSettings { get }
    /// `connections`: limits on the main listener's downstream connections.
    var connections: ConnectionsConfig { get }
}

extension IssuerConfig: ServiceSection {
    public static var name: String { "issuer" }
    public static var place: KeyPath<StackConfig, IssuerConfig?> { \.issuer }
}

extension GatewayConfig: ServiceSection {
    public static var name: String { "gateway" }
    public static var place: KeyPath<StackConfig, GatewayConfig?> { \.gateway }
}

extension JWKSConfig: ServiceSection {
    public static var name: String { "jwks" }
    public static var place: KeyPath<StackConfig, JWKSConfig?> { \.jwks }
}

/// A loaded configuration with the warnings found on the way (unknown `EKEY_*` variables,
/// plaintext listeners, missing files...).
public struct LoadedConfig: Sendable {
    /// The typed configuration.
    public var config: StackConfig
    /// Problems that do not stop a service; log each at start.
    public var warnings: [String]
    /// The file it was read from (absolute), or `nil` when loaded from a string.
    public var path: String?

    /// Creates a loaded configuration.
    public init(config: StackConfig, warnings: [String] = [], path: String? = nil) {
        self.config = config
        self.warnings = warnings
        self.path = path
    }
}

/// `tracing`: OpenTelemetry traces, exported over OTLP/HTTP (protobuf). Off unless
/// `endpoint` is set or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables are; the other `OTEL_*` variables
/// (sampler, headers, TLS files, `OTEL_SDK_DISABLED`) apply on top.
public struct TracingConfig: Sendable, Hashable {
    /// The collector's OTLP/HTTP base URL (spans go to `endpoint/v1/traces`).
    public var endpoint: URL?

    public init(endpoint: URL? = nil) {
        self.endpoint = endpoint
    }
}

/// `store`: where usage counters and replay caches live. Keys and defaults: ``ConfigKeys/Store``.
public struct StoreConfig: Sendable, Hashable {
    /// The kind of store named by the URL's scheme.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// `memory://`: in process, for one replica or the local stack.
        case memory
        /// `redis://[user:pass@]host:port[/db]`.
        case redis
        /// `rediss://...`: Redis over TLS.
        case rediss
        /// `redis-cluster://h1:p1,h2:p2`.
        case redisCluster = "redis-cluster"
        /// `rediss-cluster://h1:p1,h2:p2`: Redis Cluster over TLS.
        case redissCluster = "rediss-cluster"
    }

    /// `url` as written (it may hold a password: never log it); the store module parses the rest.
    public var url: String
    /// The scheme of ``url``.
    public var kind: Kind
    /// `prefix` of every store key.
    public var prefix: String
    /// Whether `store.url` was written in the file (or set by `EKEY_STORE_URL`); `false`
    /// when the in-memory default stands.
    public var isExplicit: Bool

    /// Said at start and in the gateway's `/readyz` when no `store.url` is set: the default
    /// in-memory store counts uses per process.
    public static let implicitMemoryWarning =
        "store.url is not set, so the gateway counts uses in its own memory (memory://): with several gateway replicas each counts on its own, and a limit-1 token works once per replica; set store.url to redis://host:port (or redis-cluster://...) for more than one replica, or to memory:// to say one replica is meant"

    /// Creates a store configuration; the default is the in-memory store.
    public init(
        url: String = ConfigKeys.Store.url.defaultValue.url, kind: Kind = ConfigKeys.Store.url.defaultValue.kind,
        prefix: String = ConfigKeys.Store.prefix.defaultValue, isExplicit: Bool = false
    ) {
        self.url = url
        self.kind = kind
        self.prefix = prefix
        self.isExplicit = isExplicit
    }
}
