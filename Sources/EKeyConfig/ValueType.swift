import Foundation

/// How one kind of value is written, read and shown.
struct ValueType<Value: Sendable>: Sendable {
    /// One value or a list of values.
    let shape: SchemaNode
    /// The docs table's type column.
    let text: String
    /// Reads the key's value, recording an error and returning `nil` when it is bad; `nil` when absent.
    let read: @Sendable (MapReader, String) -> Value?
    /// A value as the docs show a default.
    let show: @Sendable (Value) -> String

    /// The same values, described otherwise in the docs (`non-empty list of globs`).
    func described(_ text: String) -> ValueType {
        ValueType(shape: shape, text: text, read: read, show: show)
    }

    /// The same values for a key that may stay unset (its default `nil`, shown as `none`).
    var optional: ValueType<Value?> {
        let read = self.read
        let show = self.show
        return ValueType<Value?>(
            shape: shape, text: text, read: { read($0, $1).map(Optional.some) }, show: { $0.map(show) ?? "none" })
    }
}

/// A value shown as `code` in the docs.
private func code(_ text: String) -> String { "`\(text)`" }

extension ValueType where Value == ListenAddress {
    static let address = ValueType(shape: .scalar, text: "address", read: { $0.listen($1) }, show: { code($0.description) })
}

extension ValueType where Value == Duration {
    /// A duration longer than zero.
    static let positiveDuration = ValueType(
        shape: .scalar, text: "duration > 0", read: { $0.duration($1, positive: true) }, show: { code($0.configText) })
    /// A duration that may be zero.
    static let duration = ValueType(
        shape: .scalar, text: "duration (0 allowed)", read: { $0.duration($1, positive: false) }, show: { code($0.configText) })

    /// A token lifetime: whole seconds from 1 to 60, written as a number (`30`) or a duration (`30s`).
    static let tokenLifetime = ValueType(
        shape: .scalar, text: "whole seconds 1–60 (`30` or `30s`)",
        read: { reader, key in
            guard let (text, node) = reader.scalar(key) else { return nil }
            guard let duration = Duration(configText: text), duration.components.attoseconds == 0 else {
                reader.context.error(reader.childPath(key), "\"\(text)\" is not a whole number of seconds (e.g. 30)", node)
                return nil
            }
            let seconds = duration.components.seconds
            guard (1...60).contains(seconds) else {
                reader.context.error(
                    reader.childPath(key), "\(seconds) is out of range: tokens live at most 60 seconds, use 1 to 60", node)
                return nil
            }
            return duration
        },
        show: { "`\($0.components.seconds)`" })
}

extension ValueType where Value == Bool {
    static let bool = ValueType(shape: .scalar, text: "bool", read: { $0.bool($1) }, show: { code("\($0)") })
}

extension ValueType where Value == String {
    /// A non-empty string.
    static let string = ValueType(shape: .scalar, text: "string", read: { $0.string($1) }, show: { code($0) })
    /// A string that may be empty.
    static let anyString = ValueType(
        shape: .scalar, text: "string (may be empty)", read: { $0.string($1, nonEmpty: false) }, show: { code($0) })
    /// A file path, resolved from the config file's folder.
    static let file = ValueType(shape: .scalar, text: "file", read: { $0.file($1) }, show: { code($0) })
}

extension ValueType where Value == [String] {
    /// A list of non-empty strings.
    static let strings = ValueType(
        shape: .scalarList, text: "list of strings", read: { $0.stringList($1) },
        show: { code("[" + $0.joined(separator: ", ") + "]") })
}

extension ValueType where Value == Int {
    /// A whole number in `range`; `rangeHint` completes "is out of range: ...".
    static func integer(_ range: ClosedRange<Int>, text: String, rangeHint: String) -> ValueType {
        ValueType(shape: .scalar, text: text, read: { $0.int($1, range: range, rangeHint: rangeHint) }, show: { code("\($0)") })
    }
}

extension ValueType where Value == URL {
    /// An absolute URL with one of `schemes`; `pathAllowed: false` asks for an origin.
    static func url(_ schemes: [String], pathAllowed: Bool = true) -> ValueType {
        ValueType(
            shape: .scalar,
            text: "URL (\(schemes.joined(separator: ", ")))" + (pathAllowed ? "" : " without a path"),
            read: { $0.url($1, schemes: schemes, pathAllowed: pathAllowed) }, show: { code($0.absoluteString) })
    }
}

extension ValueType where Value: RawRepresentable & CaseIterable & Sendable, Value.RawValue == String {
    /// One of the enumeration's raw values, in any case.
    static var oneOf: ValueType {
        ValueType(
            shape: .scalar, text: Value.allCases.map { code($0.rawValue) }.joined(separator: ", "),
            read: { $0.oneOf($1, Value.self) }, show: { code($0.rawValue) })
    }
}

/// `store.url`: the text as written and the kind of store its scheme names.
@usableFromInline
struct StoreURL: Sendable {
    @usableFromInline let url: String
    @usableFromInline let kind: StoreConfig.Kind
}

extension ValueType where Value == StoreURL {
    static let storeURL = ValueType(
        shape: .scalar,
        text: "`memory://`, `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS), `redis-cluster://h1:p1,h2:p2`, `rediss-cluster://...` (Cluster over TLS)",
        read: { reader, key in
            guard let (text, node) = reader.scalar(key) else { return nil }
            let url = text.trimmingWhitespace()
            let scheme = url.range(of: "://").map { String(url[..<$0.lowerBound]).lowercased() }
            if let scheme, let kind = StoreConfig.Kind(rawValue: scheme) { return StoreURL(url: url, kind: kind) }
            let shown = scheme.map { "scheme \"\($0)\"" } ?? "no scheme"
            reader.context.error(
                reader.childPath(key),
                "the URL has \(shown); use memory://, redis://host:port, rediss://host:port, redis-cluster://h1:p1,h2:p2 or rediss-cluster://h1:p1,h2:p2",
                node)
            return nil
        },
        show: { "`\($0.url)`" })
}

extension ValueType where Value == TLSMinimumVersion {
    /// `"1.3"` or `"1.2"` (also `tlsv1.2`).
    static let tlsVersion = ValueType(
        shape: .scalar, text: "`\"1.3\"` or `\"1.2\"`",
        read: { reader, key in
            guard let (text, node) = reader.scalar(key) else { return nil }
            switch text.lowercased().replacingOccurrences(of: "tlsv", with: "") {
            case "1.3": return .tls13
            case "1.2": return .tls12
            default:
                reader.context.error(reader.childPath(key), "\"\(text)\" is not a TLS version (use \"1.3\" or \"1.2\")", node)
                return nil
            }
        },
        show: { "`\"\($0.rawValue)\"`" })
}
