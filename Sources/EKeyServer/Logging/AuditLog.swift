public import Logging

/// One audit event (DESIGN.md §7): an issuance, a gateway decision, a key registration
/// or revocation. Never carries a token, a proof or a key.
public struct AuditEvent: Sendable {
    /// `issue`, `verify`, `key_register`, `key_revoke`.
    public var event: String
    /// For example `issued`, `allowed`, `replay_blocked`, `registered`, `denied`.
    public var outcome: String
    public var subject: String?
    public var trace: String?
    public var capabilityAction: String?
    public var method: String?
    public var path: String?
    public var client: String?
    public var reason: String?
    public var latencyMilliseconds: Double?
    /// Further members (such as `kid`), none of them secret.
    public var extra: [String: String] = [:]

    /// Creates an event.
    public init(event: String, outcome: String) {
        self.event = event
        self.outcome = outcome
    }
}

/// Writes audit events as log lines with `"label": "audit"`.
public struct AuditLog: Sendable {
    private let logger: Logger

    /// Creates an audit log through swift-log (JSON lines once ``JSONLogHandler`` is bootstrapped).
    public init(logger: Logger = Logger(label: "audit")) {
        self.logger = logger
    }

    /// Records one event; fields that do not apply are left out.
    public func record(_ event: AuditEvent) {
        var metadata: Logger.Metadata = [:]
        metadata.reserveCapacity(10 + event.extra.count)
        metadata["event"] = .string(event.event)
        metadata["outcome"] = .string(event.outcome)
        func put(_ key: String, _ value: String?) {
            if let value { metadata[key] = .string(value) }
        }
        put("sub", event.subject)
        put("trace", event.trace)
        put("cap_action", event.capabilityAction)
        put("method", event.method)
        put("path", event.path)
        put("client", event.client)
        put("reason", event.reason)
        if let latency = event.latencyMilliseconds {
            metadata["latency_ms"] = .stringConvertible((latency * 1000).rounded() / 1000)
        }
        for (key, value) in event.extra {
            metadata[key] = .string(value)
        }
        logger.info("\(event.event) \(event.outcome)", metadata: metadata)
    }
}
