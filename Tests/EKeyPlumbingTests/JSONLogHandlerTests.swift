import EKeyProtocol
import EKeyServer
import Foundation
import Logging
import Testing

/// The JSON log lines of docs/spec/observability.md: one object per line, RFC 3339 UTC timestamps with
/// milliseconds, and strings escaped so a hostile value cannot break or forge a line.
struct JSONLogHandlerTests {
    func line(_ message: Logger.Message, _ metadata: Logger.Metadata) throws -> [String: JSONValue] {
        let sink = LogSink.memory()
        let logger = Logger(label: "audit") { label in JSONLogHandler(label: label, sink: sink) }
        logger.info(message, metadata: metadata)
        let lines = sink.lines
        try #require(lines.count == 1)
        #expect(lines[0].hasSuffix("}\n"))
        #expect(lines[0].dropLast().contains("\n") == false, "one event, one line: \(lines[0])")
        return try StrictJSONParser().parseObject(Array(lines[0].utf8))
    }

    @Test func timestampIsRFC3339UTCWithMilliseconds() throws {
        let object = try line("verify allowed", ["outcome": "allowed"])
        let timestamp = try #require(object["ts"]?.stringValue)
        #expect(timestamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(timestamp)")
        let parsed = try #require(ISO8601DateFormatter.withFractionalSeconds.date(from: timestamp))
        #expect(abs(parsed.timeIntervalSinceNow) < 5)
        #expect(object["label"]?.stringValue == "audit")
        #expect(object["level"]?.stringValue == "info")
        #expect(object["outcome"]?.stringValue == "allowed")
    }

    /// Lines over more than a second: each timestamp is well formed (milliseconds padded to
    /// three digits), within the time it was written, and never earlier than the one before,
    /// including across the second boundary where the cached date part changes.
    @Test func timestampsFollowTheClockAcrossSeconds() throws {
        let sink = LogSink.memory()
        let logger = Logger(label: "audit") { label in JSONLogHandler(label: label, sink: sink) }
        var windows: [(Date, Date)] = []
        for index in 0..<120 {
            let before = Date()
            logger.info("line \(index)")
            windows.append((before, Date()))
            Thread.sleep(forTimeInterval: 0.01)
        }
        let formatter = ISO8601DateFormatter.withFractionalSeconds
        var previous = Date.distantPast
        for (line, window) in zip(sink.lines, windows) {
            let object = try StrictJSONParser().parseObject(Array(line.utf8))
            let timestamp = try #require(object["ts"]?.stringValue)
            #expect(timestamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(timestamp)")
            let parsed = try #require(formatter.date(from: timestamp))
            #expect(parsed >= window.0.addingTimeInterval(-0.001) && parsed <= window.1, "\(timestamp) outside its write")
            #expect(parsed >= previous, "\(timestamp) went back in time")
            previous = parsed
        }
        #expect(sink.lines.count == 120)
    }

    /// The audit log's own JSON lines (what a service writes) and the lines of its swift-log
    /// path hold the same members; values are escaped, `latency_ms` is a number, and an
    /// extra member can neither replace a field nor add one of the line's own.
    @Test func auditLinesAreTheSameEitherWay() throws {
        var event = AuditEvent(event: "verify", outcome: "denied")
        event.subject = "spiffe://example.org/checkout"
        event.trace = "t-1"
        event.method = "POST"
        event.path = "/pay\"ments\n,\"outcome\":\"allowed"
        event.reason = "replayed_proof"
        event.latencyMilliseconds = 1.23456
        event.extra = ["kid": "k-1", "outcome": "allowed", "message": "forged", "ts": "0"]
        let direct = LogSink.memory()
        AuditLog(sink: direct).record(event)
        let viaLogger = LogSink.memory()
        AuditLog(logger: Logger(label: "audit") { label in JSONLogHandler(label: label, sink: viaLogger) }).record(event)
        let lines = direct.lines + viaLogger.lines
        try #require(lines.count == 2)
        var objects = try lines.map { try StrictJSONParser().parseObject(Array($0.utf8)) }
        for index in objects.indices {
            #expect(objects[index]["outcome"]?.stringValue == "denied")
            #expect(objects[index]["message"]?.stringValue == "verify denied")
            #expect(objects[index]["path"]?.stringValue == event.path)
            #expect(objects[index]["latency_ms"] == .double(1.235))
            #expect(objects[index]["kid"]?.stringValue == "k-1")
            #expect(objects[index]["label"]?.stringValue == "audit")
            #expect(lines[index].dropLast().contains("\n") == false)
            objects[index]["ts"] = nil
        }
        #expect(objects[0] == objects[1])
        let quiet = LogSink.memory()
        AuditLog(sink: quiet, level: .warning).record(event)
        #expect(quiet.lines.isEmpty, "audit events are info: a warning-level log leaves them out, as swift-log would")
    }

    /// The members after `message` come in name order, extras merged in among the fields;
    /// an extra named like a present field or like one of the line's own is left out, one
    /// named like an absent field is written.
    @Test func auditMembersAreWrittenInNameOrder() throws {
        var event = AuditEvent(event: "verify", outcome: "denied")
        event.capabilityAction = "POST:/p"
        event.method = "POST"
        event.path = "/p"
        event.latencyMilliseconds = 1.5
        event.extra = ["zzz": "9", "kid": "k", "aaa": "1", "client": "from-extra", "outcome": "allowed", "ts": "0"]
        let sink = LogSink.memory()
        AuditLog(sink: sink).record(event)
        let line = try #require(sink.lines.first)
        let members = try #require(line.range(of: "\"message\":\"verify denied\""))
        #expect(
            line[members.upperBound...]
                == #","aaa":"1","cap_action":"POST:/p","client":"from-extra","event":"verify","kid":"k","latency_ms":1.5,"method":"POST","outcome":"denied","path":"/p","zzz":"9"}"#
                + "\n", "\(line)")
    }

    @Test func hostileStringsAreEscapedAndRoundTrip() throws {
        let hostile = [
            "plain ascii", "quote \" and backslash \\", "new\nline and \r return", "tab\tand NUL \u{0} and DEL \u{7F}",
            "line separator \u{2028} paragraph \u{2029}", "forged\",\"outcome\":\"allowed", "unicode é ☃ \u{1F600} and \u{202E}rtl",
        ]
        for value in hostile {
            let object = try line("\(value)", ["path": .string(value)])
            #expect(object["path"]?.stringValue == value, "round trip of \(value.debugDescription)")
            #expect(object["message"]?.stringValue == value)
            #expect(object["outcome"] == nil, "a value cannot add members")

            // An audit line written straight into the sink's buffer escapes the same way.
            var event = AuditEvent(event: "verify", outcome: value)
            event.reason = value
            event.extra = ["kid": value]
            let sink = LogSink.memory()
            AuditLog(sink: sink).record(event)
            let audit = try StrictJSONParser().parseObject(Array(try #require(sink.lines.first).utf8))
            #expect(audit["message"]?.stringValue == "verify \(value)")
            #expect(audit["outcome"]?.stringValue == value)
            #expect(audit["reason"]?.stringValue == value)
            #expect(audit["kid"]?.stringValue == value)
            #expect(audit["event"]?.stringValue == "verify", "a value cannot replace members")
        }
    }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
