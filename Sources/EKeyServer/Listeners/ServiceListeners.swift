public import EKeyConfig

/// Where a service listens: the main listener (TLS, or plaintext HTTP/1.1 when `tls` is
/// `nil` for `tls: none`) and the plain-HTTP admin listener.
public struct ServiceListeners: Sendable {
    public var host: String
    public var port: Int
    /// `nil` serves plaintext HTTP/1.1 (`tls: none`, local debugging only).
    public var tls: ServerTLS?
    public var adminHost: String
    public var adminPort: Int
    /// Limits on the main listener's connections (`<section>.connections`).
    public var connections: ConnectionsConfig

    /// Creates listener settings.
    public init(host: String, port: Int, tls: ServerTLS?, adminHost: String, adminPort: Int, connections: ConnectionsConfig = ConnectionsConfig()) {
        self.host = host
        self.port = port
        self.tls = tls
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.connections = connections
    }
}
