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
            Self.forEachMember(of: event) { name, value in
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
                Self.forEachMember(of: event) { name, value in
                    bytes.append(UInt8(ascii: ","))
                    JSONValue.appendQuoted(name, to: &bytes)
                    bytes.append(UInt8(ascii: ":"))
                    switch value {
                    case .text(let text): JSONValue.appendQuoted(text, to: &bytes)
                    case .number(let number) where number.isFinite: bytes.append(contentsOf: number.description.utf8)
                    case .number(let number): JSONValue.appendQuoted(number.description, to: &bytes)
                    }
                }
                bytes.append(contentsOf: "}\n".utf8)
            }
        }
    }

    private enum FieldValue {
        case text(String)
        case number(Double)
    }

    /// The event's members in name order, the extra members merged in by name, with no
    /// array of fields and no sort per event. An extra member never replaces a present
    /// field, nor takes one of the names every line has (`ts`, `level`, `label`, `message`).
    private static func forEachMember(of event: AuditEvent, _ body: (String, FieldValue) -> Void) {
        let sortedExtras = event.extra.isEmpty ? [] : event.extra.filter { !JSONLogHandler.isReserved($0.key) }.sorted { $0.key < $1.key }
        var nextExtra = 0
        /// The extras named before `name` (all that are left, for `nil`); one named `name`
        /// itself is dropped when that field is present.
        func extras(before name: String?, fieldPresent: Bool) {
            while nextExtra < sortedExtras.count {
                let (extraName, value) = sortedExtras[nextExtra]
                if let name, extraName >= name {
                    if extraName == name, fieldPresent { nextExtra += 1 }
                    return
                }
                body(extraName, .text(value))
                nextExtra += 1
            }
        }
        func field(_ name: String, _ value: FieldValue?) {
            extras(before: name, fieldPresent: value != nil)
            if let value { body(name, value) }
        }
        field("cap_action", event.capabilityAction.map(FieldValue.text))
        field("client", event.client.map(FieldValue.text))
        field("event", .text(event.event))
        field("latency_ms", event.latencyMilliseconds.map { .number(($0 * 1000).rounded() / 1000) })
        field("method", event.method.map(FieldValue.text))
        field("outcome", .text(event.outcome))
        field("path", event.path.map(FieldValue.text))
        field("reason", event.reason.map(FieldValue.text))
        field("sub", event.subject.map(FieldValue.text))
        field("trace", event.trace.map(FieldValue.text))
        extras(before: nil, fieldPresent: false)
    }
}
