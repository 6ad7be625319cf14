import Foundation

/// Collects errors and warnings while typed values are read from a shape-checked tree.
final class ReadContext {
    var errors: [ConfigError] = []
    var warnings: [String] = []
    /// Folder that relative file paths are resolved from (absolute, no trailing slash needed).
    let baseDirectory: String
    /// Paths whose value had the wrong shape: already reported, and removed from the tree.
    let badPaths: Set<String>

    init(baseDirectory: String, badPaths: Set<String> = []) {
        self.baseDirectory = baseDirectory
        self.badPaths = badPaths
    }

    func error(_ path: String, _ message: String, _ node: ConfigNode? = nil) {
        errors.append(ConfigError(path: path, message: message, origin: node?.origin.text))
    }
}

/// One map level of the tree with its schema. Getters record an error and return `nil` for a
/// bad value; a value of the wrong shape was already reported by ``ShapeChecker`` and reads as
/// `nil` silently.
struct MapReader {
    let path: String
    let node: ConfigNode?
    let schema: SchemaNode
    let context: ReadContext

    func childPath(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// The raw node of `key`, `nil` when absent or null.
    func raw(_ key: String) -> ConfigNode? {
        assert(schema[key] != nil, "\(childPath(key)) is read but not declared in ConfigKeys")
        guard let value = node?[key], !value.isNull else { return nil }
        return value
    }

    func has(_ key: String) -> Bool { raw(key) != nil }

    /// `true` when `key` is written as an empty list (`[]`).
    func isEmptyList(_ key: String) -> Bool {
        if case .list(let items, _)? = raw(key) { return items.isEmpty }
        return false
    }

    /// A scalar's text and node.
    func scalar(_ key: String) -> (text: String, node: ConfigNode)? {
        guard let value = raw(key), case .scalar(let text, _, _) = value else { return nil }
        return (text, value)
    }

    /// Records "is required" when `key` is absent (and was not refused for its shape).
    func missing(_ key: String, _ hint: String) {
        guard !context.badPaths.contains(childPath(key)) else { return }
        if node?[key] == nil || node?[key]?.isNull == true {
            context.error(childPath(key), "is required: \(hint)")
        }
    }

    // MARK: Scalars

    func string(_ key: String, nonEmpty: Bool = true) -> String? {
        guard let (text, node) = scalar(key) else { return nil }
        if nonEmpty && text.trimmingWhitespace().isEmpty {
            context.error(childPath(key), "must not be empty", node)
            return nil
        }
        return text
    }

    func bool(_ key: String) -> Bool? {
        guard let (text, node) = scalar(key) else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default:
            context.error(childPath(key), "\"\(text)\" is not a boolean (use true or false)", node)
            return nil
        }
    }

    func int(_ key: String, range: ClosedRange<Int>, rangeHint: String) -> Int? {
        guard let (text, node) = scalar(key) else { return nil }
        guard let value = Int(text.trimmingWhitespace()) else {
            context.error(childPath(key), "\"\(text)\" is not a whole number", node)
            return nil
        }
        guard range.contains(value) else {
            context.error(childPath(key), "\(value) is out of range: \(rangeHint)", node)
            return nil
        }
        return value
    }

    func duration(_ key: String, positive: Bool) -> Duration? {
        guard let (text, node) = scalar(key) else { return nil }
        guard let duration = Duration(configText: text) else {
            context.error(
                childPath(key), "\"\(text)\" is not a duration (use 500ms, 5s, 2m, 24h or 1h30m)", node)
            return nil
        }
        if positive && duration <= .zero {
            context.error(childPath(key), "must be longer than 0s", node)
            return nil
        }
        return duration
    }

    func listen(_ key: String) -> ListenAddress? {
        guard let (text, node) = scalar(key) else { return nil }
        guard let address = ListenAddress(parsing: text.trimmingWhitespace()) else {
            context.error(
                childPath(key),
                "\"\(text)\" is not a listen address (use host:port with a port from 1 to 65535, e.g. 0.0.0.0:8443 or [::1]:8443)",
                node)
            return nil
        }
        return address
    }

    func oneOf<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) -> T? where T.RawValue == String {
        guard let (text, node) = scalar(key) else { return nil }
        if let value = T.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) { return value }
        let options = T.allCases.map(\.rawValue).joined(separator: ", ")
        context.error(childPath(key), "\"\(text)\" is not one of \(options)", node)
        return nil
    }

    /// An absolute URL with one of `schemes`, a host, and nothing after the path.
    func url(_ key: String, schemes: [String], pathAllowed: Bool = true) -> URL? {
        guard let (text, node) = scalar(key) else { return nil }
        let trimmed = text.trimmingWhitespace()
        let expected = schemes.map { "\($0)://" }.joined(separator: " or ")
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(),
            let host = url.host, !host.isEmpty
        else {
            context.error(childPath(key), "\"\(text)\" is not an absolute URL (expected \(expected)host...)", node)
            return nil
        }
        guard schemes.contains(scheme) else {
            context.error(childPath(key), "\"\(text)\" has scheme \(scheme); use \(expected)", node)
            return nil
        }
        if url.query != nil || url.fragment != nil {
            context.error(childPath(key), "\"\(text)\" must not have a query or fragment; remove it", node)
            return nil
        }
        if !pathAllowed && !(url.path.isEmpty || url.path == "/") {
            context.error(
                childPath(key), "\"\(text)\" must be an origin (scheme://host[:port]) without a path; remove \(url.path)",
                node)
            return nil
        }
        return url
    }

    /// A file path, resolved from the config file's folder when relative.
    func file(_ key: String) -> String? {
        guard let text = string(key) else { return nil }
        let path = text.trimmingWhitespace()
        let resolved = path.hasPrefix("/") ? path : (context.baseDirectory as NSString).appendingPathComponent(path)
        let standardized = (resolved as NSString).standardizingPath
        if !FileManager.default.fileExists(atPath: standardized) {
            context.warnings.append("\(childPath(key)): file \(standardized) does not exist (yet)")
        }
        return standardized
    }

    // MARK: Lists and maps

    /// A list of strings; `nil` when absent.
    func stringList(_ key: String, nonEmptyItems: Bool = true) -> [String]? {
        guard let value = raw(key), case .list(let items, _) = value else { return nil }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard case .scalar(let text, _, _) = item else { continue }
            if nonEmptyItems && text.trimmingWhitespace().isEmpty {
                context.error("\(childPath(key)).\(index)", "must not be empty", item)
                continue
            }
            result.append(text)
        }
        return result
    }

    /// The nested map `key` (an empty reader when absent, so defaults apply).
    func map(_ key: String) -> MapReader {
        let value = raw(key)
        let usable: ConfigNode? = if case .map = value { value } else { nil }
        return MapReader(path: childPath(key), node: usable, schema: schema[key] ?? .map([]), context: context)
    }

    /// The items of a list of maps (empty when absent).
    func list(_ key: String) -> [MapReader] {
        guard let value = raw(key), case .list(let items, _) = value, case .list(let itemSchema)? = schema[key] else {
            return []
        }
        return items.enumerated().compactMap { index, item in
            guard case .map = item else { return nil }
            return MapReader(path: "\(childPath(key)).\(index)", node: item, schema: itemSchema, context: context)
        }
    }

    /// The origin text of `key`, or of this map.
    func origin(_ key: String? = nil) -> ConfigNode? {
        if let key { return raw(key) }
        return node
    }
}

// MARK: Declared keys

extension MapReader {
    /// The value of `key`, or its default when it is absent or bad (a bad one is reported).
    subscript<Value>(_ key: ConfigKey<Value>) -> Value {
        key.type.read(self, key.name) ?? key.defaultValue
    }

    /// The value of `key` as written; `nil` when absent or bad.
    func value<Value>(_ key: ConfigKey<Value>) -> Value? {
        key.type.read(self, key.name)
    }

    /// The value of `key`; `nil` when absent or bad.
    func value<Value>(_ key: RequiredKey<Value>) -> Value? {
        key.type.read(self, key.name)
    }

    /// Records "is required" with the key's doc line when `key` is absent.
    func missing<Value>(_ key: RequiredKey<Value>, adding detail: String = "") {
        missing(key.name, key.doc + detail)
    }

    func childPath(_ key: some DeclaredKey) -> String { childPath(key.name) }
    func raw(_ key: some DeclaredKey) -> ConfigNode? { raw(key.name) }
    func has(_ key: some DeclaredKey) -> Bool { has(key.name) }
    func isEmptyList(_ key: some DeclaredKey) -> Bool { isEmptyList(key.name) }
    func scalar(_ key: some DeclaredKey) -> (text: String, node: ConfigNode)? { scalar(key.name) }

    /// The nested map `block` (an empty reader when absent, so defaults apply).
    func map(_ block: ConfigBlock) -> MapReader { map(block.name) }
    /// The items of the list of maps `block` (empty when absent).
    func list(_ block: ConfigBlock) -> [MapReader] { list(block.name) }
    func has(_ block: ConfigBlock) -> Bool { has(block.name) }
    func raw(_ block: ConfigBlock) -> ConfigNode? { raw(block.name) }
    func childPath(_ block: ConfigBlock) -> String { childPath(block.name) }
    func isEmptyList(_ block: ConfigBlock) -> Bool { isEmptyList(block.name) }
}
