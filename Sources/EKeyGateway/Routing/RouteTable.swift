public import EKeyConfig
public import Foundation

/// One route as the gateway uses it (docs/spec/gateway.md, `gateway.routes`).
public struct Route: Sendable {
    /// The path prefix, matched on whole segments.
    public let prefix: String
    /// The upstream base URL (`http://`, `https://`).
    public let upstream: URL
    /// The `aud` tokens must carry.
    public let audience: String
    /// The origin clients use, without a trailing `/`; DPoP `htu` is this plus the path.
    public let publicOrigin: String
    /// The route's effective timeouts.
    public let timeouts: TimeoutsConfig
    /// `upstream_ca`, when the upstream's certificate is not in the system trust store.
    public let upstreamCA: String?

    /// Creates a route from its config entry.
    public init(_ config: RouteConfig) {
        prefix = config.prefix
        upstream = config.upstream
        audience = config.audience
        var origin = config.publicOrigin.absoluteString
        while origin.hasSuffix("/") { origin.removeLast() }
        publicOrigin = origin
        timeouts = config.timeouts
        upstreamCA = config.upstreamCA
    }

    /// Whether `path` lies under ``prefix`` on a segment boundary: `/payments` matches
    /// `/payments` and `/payments/42`, not `/paymentsx`; `/` matches everything.
    public func matches(path: String) -> Bool {
        if prefix == "/" { return true }
        let base = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        guard path.hasPrefix(base) else { return false }
        let rest = path.dropFirst(base.count)
        return rest.isEmpty || rest.hasPrefix("/")
    }
}

/// The routes, longest prefix first.
public struct RouteTable: Sendable {
    /// Routes ordered so that the first match is the longest prefix.
    public let routes: [Route]

    /// Orders `routes` for longest-prefix matching.
    public init(_ routes: [Route]) {
        self.routes = routes.sorted { $0.prefix.count > $1.prefix.count }
    }

    /// The route for a (checked) path, or `nil` when none matches.
    public func route(for path: String) -> Route? {
        routes.first { $0.matches(path: path) }
    }
}
