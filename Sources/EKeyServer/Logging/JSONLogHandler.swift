import EKeyProtocol
import Foundation
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// Writes one JSON object per line to stdout (docs/spec/observability.md): `ts` (RFC 3339, UTC,
/// milliseconds), `level`, `label`, `message`, then the metadata as members.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: LogSink

    /// Creates a handler writing to `sink` (stdout by default).
    public init(label: String, level: Logger.Level = .info, sink: LogSink = .standardOutput) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    /// Bootstraps swift-log with this handler for every logger of the process.
    public static func bootstrap(level: Logger.Level = .info) {
        bootstrappedLevel.withLock { $0 = level }
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
    }

    /// The level given to ``bootstrap(level:)``, once it ran: the process logs JSON lines to stdout.
    static let bootstrappedLevel = Mutex<Logger.Level?>(nil)

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = event.metadata ?? [:]
        if !metadata.isEmpty || metadataProvider != nil {
            merged = metadata
            if let provided = metadataProvider?.get() {
                merged.merge(provided) { _, new in new }
            }
            if let eventMetadata = event.metadata {
                merged.merge(eventMetadata) { _, new in new }
            }
        }
        let members = merged.filter { !Self.isReserved($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, Self.render($0.value)) }
        sink.write(Self.line(level: event.level, label: label, message: event.message.description, members: members))
    }

    /// One log line: `ts`, `level`, `label`, `message`, then `members` (names in order, each
    /// with its value already as JSON).
    static func line(level: Logger.Level, label: String, message: String, members: [(name: String, json: String)]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(384)
        appendStart(to: &bytes, level: level, label: label)
        JSONValue.appendQuoted(message, to: &bytes)
        for (name, json) in members {
            bytes.append(UInt8(ascii: ","))
            JSONValue.appendQuoted(name, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            bytes.append(contentsOf: json.utf8)
        }
        bytes.append(contentsOf: "}\n".utf8)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends a line's start up to the value of `message`: `{"ts":"…","level":…,"label":…,"message":`.
    static func appendStart(to bytes: inout [UInt8], level: Logger.Level, label: String) {
        bytes.append(contentsOf: "{\"ts\":\"".utf8)
        appendTimestamp(to: &bytes)
        bytes.append(contentsOf: "\",\"level\":".utf8)
        JSONValue.appendQuoted(level.rawValue, to: &bytes)
        bytes.append(contentsOf: ",\"label\":".utf8)
        JSONValue.appendQuoted(label, to: &bytes)
        bytes.append(contentsOf: ",\"message\":".utf8)
    }

    /// Members every line has; metadata under these names is dropped.
    static func isReserved(_ key: String) -> Bool {
        switch key {
        case "ts", "level", "label", "message": true
        default: false
        }
    }

    private static func render(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): return JSONValue.quoted(text)
        case .stringConvertible(let convertible):
            if let number = convertible as? Double { return number.isFinite ? "\(number)" : JSONValue.quoted(number.description) }
            if let number = convertible as? Int { return "\(number)" }
            if let number = convertible as? any BinaryInteger { return "\(number)" }
            if let flag = convertible as? Bool { return flag ? "true" : "false" }
            return JSONValue.quoted(convertible.description)
        case .array(let values): return "[" + values.map(render).joined(separator: ",") + "]"
        case .dictionary(let members):
            return "{" + members.keys.sorted().map { JSONValue.quoted($0) + ":" + render(members[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// The second of the last timestamp and its text up to the seconds (`2026-12-02T05:43:59.`),
    /// so that lines within one second format only the milliseconds.
    private static let lastSecond = Mutex<(second: Int, prefix: String)>((-1, ""))

    /// Appends the current time as RFC 3339 UTC with milliseconds, without the quotes.
    private static func appendTimestamp(to line: inout [UInt8]) {
        let now = Date().timeIntervalSince1970
        let second = Int(now.rounded(.down))
        let milliseconds = min(Int((now - now.rounded(.down)) * 1000), 999)
        let prefix = lastSecond.withLock { last in
            if last.second != second {
                last = (second, secondsText(second))
            }
            return last.prefix
        }
        line.append(contentsOf: prefix.utf8)
        line.append(UInt8(ascii: "0") + UInt8(milliseconds / 100))
        line.append(UInt8(ascii: "0") + UInt8(milliseconds / 10 % 10))
        line.append(UInt8(ascii: "0") + UInt8(milliseconds % 10))
        line.append(UInt8(ascii: "Z"))
    }

    private static func secondsText(_ second: Int) -> String {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text = ""
        func append(_ value: Int, digits: Int) {
            var digitsText = String(value)
            while digitsText.utf8.count < digits { digitsText = "0" + digitsText }
            text += digitsText
        }
        append(Int(parts.tm_year) + 1900, digits: 4)
        text += "-"
        append(Int(parts.tm_mon) + 1, digits: 2)
        text += "-"
        append(Int(parts.tm_mday), digits: 2)
        text += "T"
        append(Int(parts.tm_hour), digits: 2)
        text += ":"
        append(Int(parts.tm_min), digits: 2)
        text += ":"
        append(Int(parts.tm_sec), digits: 2)
        return text + "."
    }
}

/// Where log lines go: stdout in services, a buffer in tests.
///
/// Stdout is written in batches: a line written on an event loop waits in one buffer until
/// the end of that loop's current turn, or, when the last write was less than
/// ``flushInterval`` ago, until that interval has passed (or the buffer holds
/// ``batchBytes``). A quiet service writes each line as its turn ends; a busy one writes
/// one batch per interval instead of one `write(2)` per request (both services write an
/// audit line per request). A line written elsewhere is written at once, with whatever
/// waits before it. Lines never interleave and keep their order; what waits is written at
/// process exit too, so only SIGKILL can lose lines: at most one interval's.
public final class LogSink: Sendable {
    /// Buffered bytes that are written at once.
    static let batchBytes = 32 * 1024
    /// The shortest time between two writes of lines from an event loop.
    static let flushInterval = TimeAmount.milliseconds(10)

    private struct Batch {
        var bytes: [UInt8] = []
        var flushScheduled = false
        var lastWrite = NIODeadline.uptimeNanoseconds(0)
        var writes = 0
    }

    private let batch = NIOLockedValueBox(Batch())
    private let collected = NIOLockedValueBox<[String]>([])
    private let collects: Bool
    private let fileDescriptor: Int32

    private init(collects: Bool, fileDescriptor: Int32 = 1) {
        self.collects = collects
        self.fileDescriptor = fileDescriptor
    }

    /// A sink writing to `fileDescriptor` in batches, as stdout is written.
    convenience init(fileDescriptor: Int32) {
        self.init(collects: false, fileDescriptor: fileDescriptor)
    }

    /// Process stdout, flushed at exit.
    public static let standardOutput: LogSink = {
        atexit { LogSink.standardOutput.flush() }
        return LogSink(collects: false)
    }()

    /// How many `write(2)` batches this sink has written.
    var batchesWritten: Int { batch.withLockedValue { $0.writes } }

    /// A sink that keeps lines in memory, for tests.
    public static func memory() -> LogSink { LogSink(collects: true) }

    /// The lines written so far (memory sinks).
    public var lines: [String] { collected.withLockedValue { $0 } }

    func write(_ line: String) {
        write { $0.append(contentsOf: line.utf8) }
    }

    /// Writes the line `writeLine` appends, straight into the batch: no string in between.
    func write(lineBy writeLine: (inout [UInt8]) -> Void) {
        if collects {
            var bytes: [UInt8] = []
            writeLine(&bytes)
            collected.withLockedValue { $0.append(String(decoding: bytes, as: UTF8.self)) }
            return
        }
        let loop = MultiThreadedEventLoopGroup.currentEventLoop
        let flushDue = batch.withLockedValue { batch -> NIODeadline? in
            writeLine(&batch.bytes)
            if loop == nil || batch.bytes.count >= Self.batchBytes {
                writeOut(&batch)
                return nil
            }
            guard !batch.flushScheduled else { return nil }
            batch.flushScheduled = true
            return batch.lastWrite + Self.flushInterval
        }
        guard let flushDue, let loop else { return }
        if flushDue <= .now() {
            loop.execute { self.flush() }
        } else {
            loop.scheduleTask(deadline: flushDue) { self.flush() }
        }
    }

    /// Writes the buffered lines now.
    public func flush() {
        batch.withLockedValue { batch in
            batch.flushScheduled = false
            writeOut(&batch)
        }
    }

    /// Writes the batch out (under the batch lock, so batches keep their order) and empties it.
    private func writeOut(_ batch: inout Batch) {
        guard !batch.bytes.isEmpty else { return }
        batch.lastWrite = .now()
        batch.writes += 1
        batch.bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0, errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
        }
        batch.bytes.removeAll(keepingCapacity: true)
    }
}
