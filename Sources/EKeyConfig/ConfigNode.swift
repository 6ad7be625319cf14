import Yams

/// Where a value came from, for error messages.
enum ValueOrigin: Sendable, Equatable {
    case file(line: Int)
    case environment(String)
    case unknown

    var text: String? {
        switch self {
        case .file(let line): "line \(line)"
        case .environment(let name): "from \(name)"
        case .unknown: nil
        }
    }
}

/// The configuration as read from YAML, before typing: scalars keep their text and whether
/// they were quoted, maps keep their order.
indirect enum ConfigNode: Sendable, Equatable {
    case scalar(String, quoted: Bool, origin: ValueOrigin)
    case map([(key: String, value: ConfigNode)], origin: ValueOrigin)
    case list([ConfigNode], origin: ValueOrigin)

    static func == (lhs: ConfigNode, rhs: ConfigNode) -> Bool {
        switch (lhs, rhs) {
        case let (.scalar(a, qa, oa), .scalar(b, qb, ob)): a == b && qa == qb && oa == ob
        case let (.map(a, oa), .map(b, ob)):
            oa == ob && a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.list(a, oa), .list(b, ob)): oa == ob && a == b
        default: false
        }
    }

    var origin: ValueOrigin {
        switch self {
        case .scalar(_, _, let origin), .map(_, let origin), .list(_, let origin): origin
        }
    }

    /// A plain `~`, `null` or empty scalar: the key is treated as absent.
    var isNull: Bool {
        if case .scalar(let text, false, _) = self { return ["", "~", "null", "Null", "NULL"].contains(text) }
        return false
    }

    /// The value of `key` in a map node.
    subscript(key: String) -> ConfigNode? {
        guard case .map(let entries, _) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// A short name of the node's shape, for error messages.
    var kindName: String {
        switch self {
        case .scalar: "a single value"
        case .map: "a map"
        case .list: "a list"
        }
    }
}

extension ConfigNode {
    /// Converts a composed Yams node, keeping line numbers.
    init(yams node: Node, origin override: ValueOrigin? = nil) throws(ConfigError) {
        let origin = override ?? node.mark.map { ValueOrigin.file(line: $0.line) } ?? .unknown
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
                || scalar.style == .literal || scalar.style == .folded
            self = .scalar(scalar.string, quoted: quoted, origin: origin)
        case .sequence(let sequence):
            var items: [ConfigNode] = []
            for item in sequence { items.append(try ConfigNode(yams: item, origin: override)) }
            self = .list(items, origin: origin)
        case .mapping(let mapping):
            var entries: [(key: String, value: ConfigNode)] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ConfigError(path: "", message: "map keys must be plain names", origin: origin.text)
                }
                entries.append((keyScalar.string, try ConfigNode(yams: value, origin: override)))
            }
            self = .map(entries, origin: origin)
        case .alias:
            throw ConfigError(path: "", message: "unresolved YAML alias", origin: origin.text)
        }
    }

    /// Parses a YAML document; an empty document is an empty map.
    static func parse(yaml: String) throws(ConfigError) -> ConfigNode {
        let composed: Node?
        do {
            composed = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(path: "", message: "the file is not valid YAML: \(Self.describe(yamlError: error))")
        }
        guard let composed else { return .map([], origin: .unknown) }
        return try ConfigNode(yams: composed)
    }

    /// Parses an environment variable's value like a YAML scalar or flow collection
    /// (`true`, `5s`, `[a, b]`); text that is not valid YAML stays a plain string.
    static func parse(environmentValue value: String, name: String) -> ConfigNode {
        let origin = ValueOrigin.environment(name)
        if let node = try? Yams.compose(yaml: value), let converted = try? ConfigNode(yams: node, origin: origin) {
            return converted
        }
        return .scalar(value, quoted: value.isEmpty, origin: origin)
    }

    private static func describe(yamlError error: any Error) -> String {
        if let yaml = error as? YamlError {
            switch yaml {
            case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
                return "\(problem) at line \(mark.line), column \(mark.column)"
            case let .duplicatedKeysInMapping(duplicates, _):
                return "duplicate keys \(duplicates.joined(separator: ", ")); keep one of each"
            default:
                return "\(yaml)"
            }
        }
        return "\(error)"
    }
}
