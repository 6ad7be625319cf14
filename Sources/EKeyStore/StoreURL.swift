internal import Foundation

/// A parsed `store.url` (docs/configuration.md).
///
/// - `memory://` (optionally `?max_entries=N`): the embedded in-memory store.
/// - `redis://[user:pass@]host:port[/db]` and `rediss://...` (TLS).
/// - `redis-cluster://h1:p1,h2:p2` and `rediss-cluster://...` (TLS): Redis Cluster seeds.
///
/// Query options for Redis URLs: `connect_timeout_ms` (default 2000),
/// `command_timeout_ms` (default 2000), `pool_size` (connections per node, default 4),
/// and for TLS `ca` (PEM file of trusted CAs; default: the system store) and
/// `tls_server_name`. User and password may be percent-encoded.
public struct StoreURL: Sendable, Hashable, CustomStringConvertible {
    /// Which kind of store the URL selects.
    public enum Kind: Sendable, Hashable { case memory, redis, cluster }

    /// A host and port.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
    }

    public var kind: Kind
    public var endpoints: [Endpoint]
    public var tls: Bool
    public var username: String?
    public var password: String?
    public var database: Int
    public var caFile: String?
    public var tlsServerName: String?
    public var connectTimeoutMilliseconds: Int
    public var commandTimeoutMilliseconds: Int
    public var poolSize: Int
    /// Memory store bound: live entries (counters, proofs, rate buckets) it will hold.
    public var maxEntries: Int
    private var scheme: String
    private var query: [(String, String)]

    public static func == (lhs: StoreURL, rhs: StoreURL) -> Bool { lhs.description == rhs.description && lhs.password == rhs.password }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.description) }

    /// Parses `string`; the error names the URL with the password masked and the fix.
    public init(_ string: String) throws(StoreError) {
        guard let schemeEnd = string.range(of: "://") else {
            throw Self.invalid(string, "it has no scheme; use memory://, redis://host:6379, rediss://host:6380 or redis-cluster://h1:p1,h2:p2")
        }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        var rest = String(string[schemeEnd.upperBound...])
        self.scheme = scheme
        self.username = nil
        self.password = nil
        self.database = 0
        self.caFile = nil
        self.tlsServerName = nil
        self.connectTimeoutMilliseconds = 2000
        self.commandTimeoutMilliseconds = 2000
        self.poolSize = 4
        self.maxEntries = 1_000_000
        self.endpoints = []
        self.query = []
        switch scheme {
        case "memory": (self.kind, self.tls) = (.memory, false)
        case "redis": (self.kind, self.tls) = (.redis, false)
        case "rediss": (self.kind, self.tls) = (.redis, true)
        case "redis-cluster": (self.kind, self.tls) = (.cluster, false)
        case "rediss-cluster": (self.kind, self.tls) = (.cluster, true)
        default:
            throw Self.invalid(string, "scheme \(scheme) is unknown; use memory, redis, rediss, redis-cluster or rediss-cluster")
        }

        if let queryStart = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: queryStart)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                let name = String(parts[0])
                let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
                self.query.append((name, value))
            }
            rest = String(rest[..<queryStart])
        }
        var authority = rest
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = String(rest[..<slash])
            path = String(rest[rest.index(after: slash)...])
        }
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            authority = String(authority[authority.index(after: at)...])
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon])
                self.username = user.isEmpty ? nil : (user.removingPercentEncoding ?? user)
                let password = String(credentials[credentials.index(after: colon)...])
                self.password = password.removingPercentEncoding ?? password
            } else if !credentials.isEmpty {
                // `redis://secret@host` is the password-only form many clients accept.
                self.password = String(credentials).removingPercentEncoding ?? String(credentials)
            }
        }
        let masked = Self.masked(string)

        for (name, value) in self.query {
            func integer(_ range: ClosedRange<Int>) throws(StoreError) -> Int {
                guard let number = Int(value), range.contains(number) else {
                    throw Self.invalid(masked, "option \(name)=\(value) must be an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return number
            }
            switch (self.kind, name) {
            case (.memory, "max_entries"): self.maxEntries = try integer(1...Int(Int32.max))
            case (.redis, "connect_timeout_ms"), (.cluster, "connect_timeout_ms"): self.connectTimeoutMilliseconds = try integer(1...600_000)
            case (.redis, "command_timeout_ms"), (.cluster, "command_timeout_ms"): self.commandTimeoutMilliseconds = try integer(1...600_000)
            case (.redis, "pool_size"), (.cluster, "pool_size"): self.poolSize = try integer(1...256)
            case (.redis, "ca"), (.cluster, "ca"): self.caFile = value
            case (.redis, "tls_server_name"), (.cluster, "tls_server_name"): self.tlsServerName = value
            default:
                throw Self.invalid(masked, "option \(name) is unknown for \(scheme)://; see docs/store.md for the options")
            }
        }
        if (self.caFile != nil || self.tlsServerName != nil) && !self.tls {
            throw Self.invalid(masked, "options ca and tls_server_name need TLS; use rediss:// or rediss-cluster://")
        }

        switch self.kind {
        case .memory:
            guard authority.isEmpty, path.isEmpty else { throw Self.invalid(masked, "memory:// takes no host or path") }
        case .redis, .cluster:
            for hostPort in authority.split(separator: ",", omittingEmptySubsequences: false) {
                self.endpoints.append(try Self.endpoint(String(hostPort), url: masked))
            }
            if self.kind == .redis && self.endpoints.count != 1 {
                throw Self.invalid(masked, "redis:// takes one host; for several nodes use redis-cluster://h1:p1,h2:p2")
            }
            if !path.isEmpty {
                guard let database = Int(path), database >= 0 else {
                    throw Self.invalid(masked, "the path /\(path) must be a database number such as /0")
                }
                guard self.kind == .redis || database == 0 else {
                    throw Self.invalid(masked, "Redis Cluster has only database 0; remove /\(path)")
                }
                self.database = database
            }
        }
    }

    private static func endpoint(_ text: String, url: String) throws(StoreError) -> Endpoint {
        var host = text
        var portText: Substring? = nil
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty else { throw invalid(url, "a host is missing; write host:port, e.g. 127.0.0.1:6379") }
        var port = 6379
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number) else {
                throw invalid(url, "port \(portText) of \(host) is not a number in 1...65535")
            }
            port = number
        }
        return Endpoint(host: host, port: port)
    }

    /// `raw` as typed, with the password (or password-only credential) masked.
    private static func masked(_ raw: String) -> String {
        guard let schemeEnd = raw.range(of: "://") else { return raw }
        let afterScheme = raw[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        guard let at = afterScheme[..<authorityEnd].lastIndex(of: "@") else { return raw }
        let credentials = afterScheme[..<at]
        let user = credentials.firstIndex(of: ":").map { String(credentials[..<$0]) + ":" } ?? ""
        return String(raw[..<schemeEnd.upperBound]) + user + "***" + String(raw[at...])
    }

    private static func invalid(_ url: String, _ reason: String) -> StoreError {
        StoreError(.invalidURL, "store.url \(url) is invalid: \(reason)")
    }

    /// The URL with the password replaced by `***`, safe for logs and errors.
    public var description: String {
        var text = "\(self.scheme)://"
        switch (self.username, self.password) {
        case (let user?, _?): text += "\(user):***@"
        case (nil, _?): text += "***@"
        case (let user?, nil): text += "\(user)@"
        case (nil, nil): break
        }
        text += self.endpoints.map(\.description).joined(separator: ",")
        if self.kind == .redis { text += "/\(self.database)" }
        return text
    }
}
