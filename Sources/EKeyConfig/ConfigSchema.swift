/// The shape of the configuration file: which keys exist at each level (declared in ``ConfigKeys``).
indirect enum SchemaNode: Sendable {
    /// One value (string, number, boolean, duration...).
    case scalar
    /// A list of single values.
    case scalarList
    /// A map with exactly these keys, in documentation order.
    case map([(key: String, value: SchemaNode)])
    /// A list whose items all have this shape.
    case list(SchemaNode)
    /// `none`, or a map with these keys (the `tls` block).
    case noneOrMap([(key: String, value: SchemaNode)])

    /// The keys of a map (or `noneOrMap`) level.
    var keys: [String] {
        switch self {
        case .map(let entries), .noneOrMap(let entries): entries.map(\.key)
        default: []
        }
    }

    /// The schema of `key` at a map level.
    subscript(key: String) -> SchemaNode? {
        switch self {
        case .map(let entries), .noneOrMap(let entries): entries.first { $0.key == key }?.value
        default: nil
        }
    }
}

/// The schema of the whole stack file, derived from ``ConfigKeys``.
enum ConfigSchema {
    static let root = ConfigKeys.root.schema
}

/// Checks a parsed file against the schema: unknown keys and values of the wrong shape.
struct ShapeChecker {
    private(set) var errors: [ConfigError] = []

    mutating func check(_ node: ConfigNode, against schema: SchemaNode, path: String) {
        if node.isNull { return }
        switch schema {
        case .scalar:
            if case .scalar = node { return }
            errors.append(ConfigError(
                path: path, message: "expected a single value, found \(node.kindName)", origin: node.origin.text))
        case .scalarList:
            guard case .list(let items, _) = node else {
                errors.append(ConfigError(
                    path: path, message: "expected a list such as [a, b], found \(node.kindName)",
                    origin: node.origin.text))
                return
            }
            for (index, item) in items.enumerated() {
                if case .scalar = item { continue }
                errors.append(ConfigError(
                    path: "\(path).\(index)", message: "expected a single value, found \(item.kindName)",
                    origin: item.origin.text))
            }
        case .list(let itemSchema):
            guard case .list(let items, _) = node else {
                errors.append(ConfigError(
                    path: path, message: "expected a list of maps (- {...}), found \(node.kindName)",
                    origin: node.origin.text))
                return
            }
            for (index, item) in items.enumerated() { check(item, against: itemSchema, path: "\(path).\(index)") }
        case .map:
            checkMap(node, schema: schema, path: path)
        case .noneOrMap:
            if case .scalar(let text, _, _) = node {
                if text.lowercased() != "none" {
                    errors.append(ConfigError(
                        path: path,
                        message: "\"\(text)\" is not valid: use none (plaintext, local debugging only) or a map {\(schema.keys.joined(separator: ", "))}",
                        origin: node.origin.text))
                }
                return
            }
            checkMap(node, schema: schema, path: path)
        }
    }

    private mutating func checkMap(_ node: ConfigNode, schema: SchemaNode, path: String) {
        guard case .map(let entries, _) = node else {
            errors.append(ConfigError(
                path: path.isEmpty ? "" : path,
                message: "expected a map of keys (\(schema.keys.joined(separator: ", "))), found \(node.kindName)",
                origin: node.origin.text))
            return
        }
        for (key, value) in entries {
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            guard let childSchema = schema[key] else {
                errors.append(ConfigError(
                    path: childPath,
                    message: "unknown key '\(childPath)' (valid: \(schema.keys.joined(separator: ", "))); fix the spelling or remove it",
                    origin: value.origin.text))
                continue
            }
            check(value, against: childSchema, path: childPath)
        }
    }
}
