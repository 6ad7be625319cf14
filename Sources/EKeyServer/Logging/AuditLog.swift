import EKeyProtocol
public import Logging
import Synchronization

/// One audit event (docs/spec/observability.md): an issuance, a gateway decision, a key registration
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
    private enum Output {
        case logger(Logger)
        /// JSON lines written straight to the sink, in ``JSONLogHandler``'s format, when at
        /// least `level` is on: no swift-log metadata dictionary per event on the hot path.
        case lines(LogSink, level: Logger.Level)
    }

    private let output: Output

    /// The process's audit log: once ``JSONLogHandler`` is bootstrapped, JSON lines written to
    /// stdout directly (the same lines its handler would write); before, swift-log's `audit` logger.
    public init() {
        if let level = JSONLogHandler.bootstrappedLevel.withLock({ $0 }) {
            output = .lines(.standardOutput, level: level)
        } else {
            output = .logger(Logger(label: "audit"))
        }
    }

    /// Creates an audit log through `logger`.
    public init(logger: Logger) {
        output = .logger(logger)
    }

    /// Creates an audit log writing JSON lines to `sink` at `level` and above.
    public init(sink: LogSink, level: Logger.Level = .info) {
        output = .lines(sink, level: level)
    }

    /// Records one event; fields that do not apply are left out.
    public func record(_ event: AuditEvent) {
        switch output {
        case .logger(let logger):
            var metadata: Logger.Metadata = [:]
            metadata.reserveCapacity(10 + event.extra.count)
            for (name, value) in Self.fields(of: event) {
                switch value {
                case .text(let text): metadata[name] = .string(text)
                case .number(let number): metadata[name] = .stringConvertible(number)
                }
            }
            logger.info("\(event.event) \(event.outcome)", metadata: metadata)
        case .lines(let sink, let level):
            guard level <= .info else { return }
            sink.write { bytes in
                JSONLogHandler.appendStart(to: &bytes, level: .info, label: "audit")
                bytes.append(UInt8(ascii: "\""))
                JSONValue.appendEscaped(event.event, to: &bytes)
                bytes.append(UInt8(ascii: " "))
                JSONValue.appendEscaped(event.outcome, to: &bytes)
                bytes.append(UInt8(ascii: "\""))
                Self.appendMembers(of: event, to: &bytes)
                bytes.append(contentsOf: "}\n".utf8)
            }
        }
    }

    /// The event's fields, in name order (the order ``fields(of:)`` sorted gives), each a
    /// `,"name":value` member, with the extra members merged in by name: straight into the
    /// line, with no array of fields and no sort per event.
    private static func appendMembers(of event: AuditEvent, to bytes: inout [UInt8]) {
        let sortedExtras = event.extra.isEmpty ? [] : event.extra.filter { !JSONLogHandler.isReserved($0.key) }.sorted { $0.key < $1.key }
        var nextExtra = 0
        func member(_ name: String, _ write: (inout [UInt8]) -> Void) {
            bytes.append(UInt8(ascii: ","))
            JSONValue.appendQuoted(name, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            write(&bytes)
        }
        /// The extras named before `name` (all that are left, for `nil`); one named `name`
        /// itself is dropped when that field is present, as a field always wins.
        func extras(before name: String?, fieldPresent: Bool = false) {
            while nextExtra < sortedExtras.count {
                let (extraName, value) = sortedExtras[nextExtra]
                if let name, extraName >= name {
                    if extraName == name, fieldPresent { nextExtra += 1 }
                    return
                }
                member(extraName) { JSONValue.appendQuoted(value, to: &$0) }
                nextExtra += 1
            }
        }
        func text(_ name: String, _ value: String?) {
            extras(before: name, fieldPresent: value != nil)
            if let value { member(name) { JSONValue.appendQuoted(value, to: &$0) } }
        }
        text("cap_action", event.capabilityAction)
        text("client", event.client)
        text("event", event.event)
        extras(before: "latency_ms", fieldPresent: event.latencyMilliseconds != nil)
        if let latency = event.latencyMilliseconds {
            let number = (latency * 1000).rounded() / 1000
            member("latency_ms") { bytes in
                if number.isFinite {
                    bytes.append(contentsOf: number.description.utf8)
                } else {
                    JSONValue.appendQuoted(number.description, to: &bytes)
                }
            }
        }
        text("method", event.method)
        text("outcome", event.outcome)
        text("path", event.path)
        text("reason", event.reason)
        text("sub", event.subject)
        text("trace", event.trace)
        extras(before: nil)
    }

    private enum FieldValue {
        case text(String)
        case number(Double)
    }

    /// The event's members by name. An extra member never replaces a field, nor takes one of
    /// the names every line has (`ts`, `level`, `label`, `message`).
    private static func fields(of event: AuditEvent) -> [(String, FieldValue)] {
        var fields: [(String, FieldValue)] = []
        fields.reserveCapacity(10 + event.extra.count)
        fields.append(("event", .text(event.event)))
        fields.append(("outcome", .text(event.outcome)))
        func add(_ name: String, _ value: String?) {
            if let value { fields.append((name, .text(value))) }
        }
        add("sub", event.subject)
        add("trace", event.trace)
        add("cap_action", event.capabilityAction)
        add("method", event.method)
        add("path", event.path)
        add("client", event.client)
        add("reason", event.reason)
        if let latency = event.latencyMilliseconds {
            fields.append(("latency_ms", .number((latency * 1000).rounded() / 1000)))
        }
        for (name, value) in event.extra where !JSONLogHandler.isReserved(name) && !fields.contains(where: { $0.0 == name }) {
            fields.append((name, .text(value)))
        }
        return fields
    }
}
