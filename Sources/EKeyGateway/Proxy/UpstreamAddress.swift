import Foundation

/// Where a plaintext upstream (`http://` or `h2c://`) listens, read from its route URL.
struct UpstreamAddress: Sendable {
    let host: String
    /// The URL's port, or 80.
    let port: Int
    /// `host:port` as written in the route, sent as `Host` or `:authority`.
    let authority: String
    /// The URL's path without its trailing `/`, put before each request's path.
    let basePath: String

    /// Reads `upstream`; throws, naming the fix, when it has no host.
    init(_ upstream: URL) throws {
        guard let host = upstream.host, !host.isEmpty else {
            let scheme = upstream.scheme ?? "http"
            throw GatewaySetupError(description: "the upstream \(upstream.absoluteString) has no host; write it as \(scheme)://HOST:PORT")
        }
        self.host = host
        port = upstream.port ?? 80
        authority = upstream.port.map { "\(host):\($0)" } ?? host
        var path = upstream.path
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
    }
}
