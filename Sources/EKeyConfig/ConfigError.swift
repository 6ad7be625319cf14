/// One problem found in the configuration: the key it concerns and what to do about it.
///
/// ```
/// config error at gateway.dpop.max_age: "5x" is not a duration (use 500ms, 5s, 2m, 24h or 1h30m) (line 27)
/// ```
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Dotted path of the key (`gateway.routes.0.upstream`); empty for the file as a whole.
    public var path: String
    /// What is wrong and how to fix it.
    public var message: String
    /// Where the value came from: `line 27` of the file or `EKEY_GATEWAY_LISTEN`; `nil` when unknown.
    public var origin: String?

    /// Creates an error about the key at `path`.
    public init(path: String, message: String, origin: String? = nil) {
        self.path = path
        self.message = message
        self.origin = origin
    }

    public var description: String {
        let head = path.isEmpty ? "config error" : "config error at \(path)"
        let tail = origin.map { " (\($0))" } ?? ""
        return "\(head): \(message)\(tail)"
    }
}

/// Every problem found in one configuration, reported together so that one run shows them all.
public struct ConfigErrors: Error, CustomStringConvertible, Sendable, Equatable {
    /// The problems, in the order they were found (file order, then environment).
    public var errors: [ConfigError]

    /// Wraps the problems found.
    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    /// `true` when some error concerns `path` exactly.
    public func contains(path: String) -> Bool {
        errors.contains { $0.path == path }
    }

    public var description: String {
        if errors.count == 1 { return errors[0].description }
        return "\(errors.count) config errors:\n" + errors.map { "  \($0.description)" }.joined(separator: "\n")
    }
}
