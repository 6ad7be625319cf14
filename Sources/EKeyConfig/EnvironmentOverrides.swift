/// `EKEY_<PATH>` environment variables laid over the parsed file (docs/configuration.md).
///
/// A name is matched against the schema (declared in ``ConfigKeys``) rather than split at `_`, because key names contain
/// underscores: `EKEY_GATEWAY_ADMIN_LISTEN` is `gateway.admin_listen`, and
/// `EKEY_GATEWAY_ROUTES_0_UPSTREAM` is `gateway.routes.0.upstream`.
struct EnvironmentOverrides {
    /// The variable that names the file itself; never an override.
    static let configVariable = "EKEY_CONFIG"
    static let prefix = "EKEY_"

    /// One path segment: a map key or a list index.
    enum Segment: Equatable, Sendable, CustomStringConvertible {
        case key(String)
        case index(Int)

        var description: String {
            switch self {
            case .key(let key): key
            case .index(let index): String(index)
            }
        }
    }

    private(set) var errors: [ConfigError] = []
    private(set) var warnings: [String] = []

    /// Every schema path that `name` (without `EKEY_`) can denote.
    static func matches(_ name: String, schema: SchemaNode = ConfigSchema.root) -> [[Segment]] {
        let tokens = name.uppercased().split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard !tokens.isEmpty, !tokens.contains("") else { return [] }
        return match(tokens[...], schema: schema)
    }

    private static func match(_ tokens: ArraySlice<String>, schema: SchemaNode) -> [[Segment]] {
        switch schema {
        case .scalar, .scalarList:
            return []
        case .list(let item):
            guard let first = tokens.first, let index = Int(first), index >= 0, String(index) == first else { return [] }
            let rest = tokens.dropFirst()
            if rest.isEmpty { return [[.index(index)]] }
            return match(rest, schema: item).map { [.index(index)] + $0 }
        case .map(let entries), .noneOrMap(let entries):
            var found: [[Segment]] = []
            for (key, child) in entries {
                let keyTokens = key.uppercased().split(separator: "_").map(String.init)
                guard tokens.count >= keyTokens.count, Array(tokens.prefix(keyTokens.count)) == keyTokens else { continue }
                let rest = tokens.dropFirst(keyTokens.count)
                if rest.isEmpty {
                    found.append([.key(key)])
                } else {
                    found += match(rest, schema: child).map { [.key(key)] + $0 }
                }
            }
            return found
        }
    }

    /// The schema node at `path`.
    static func schema(at path: [Segment], in root: SchemaNode = ConfigSchema.root) -> SchemaNode? {
        var node = root
        for segment in path {
            switch (segment, node) {
            case (.key(let key), _): guard let child = node[key] else { return nil }; node = child
            case (.index, .list(let item)): node = item
            default: return nil
            }
        }
        return node
    }

    /// Applies every `EKEY_*` variable of `environment` to `root`.
    mutating func apply(_ environment: [String: String], to root: inout ConfigNode, schema: SchemaNode = ConfigSchema.root) {
        var planned: [(name: String, path: [Segment])] = []
        for name in environment.keys.sorted() where name.hasPrefix(Self.prefix) && name != Self.configVariable {
            let paths = Self.matches(String(name.dropFirst(Self.prefix.count)), schema: schema)
            switch paths.count {
            case 0:
                warnings.append(
                    "\(name) names no config key and is ignored; write EKEY_ then the key's path in upper case with _ between the parts, e.g. EKEY_GATEWAY_ADMIN_LISTEN for gateway.admin_listen")
            case 1:
                planned.append((name, paths[0]))
            default:
                let candidates = paths.map { $0.map(\.description).joined(separator: ".") }.joined(separator: ", ")
                errors.append(ConfigError(
                    path: "", message: "\(name) is ambiguous: it could set \(candidates); set the key in the file instead"))
            }
        }
        // Whole blocks first, so that EKEY_GATEWAY_DPOP and EKEY_GATEWAY_DPOP_MAX_AGE compose.
        planned.sort { ($0.path.count, $0.name) < ($1.path.count, $1.name) }
        for (name, path) in planned {
            guard let value = environment[name], let target = Self.schema(at: path, in: schema) else { continue }
            var node = ConfigNode.parse(environmentValue: value, name: name)
            if case .scalar = target, !isScalar(node) {
                node = .scalar(value, quoted: true, origin: .environment(name))
            }
            if let error = Self.set(node, at: path[...], in: &root, walked: [], name: name) {
                errors.append(error)
            }
        }
    }

    private func isScalar(_ node: ConfigNode) -> Bool {
        if case .scalar = node { return true }
        return false
    }

    private static func set(
        _ value: ConfigNode, at path: ArraySlice<Segment>, in node: inout ConfigNode, walked: [Segment], name: String
    ) -> ConfigError? {
        guard let segment = path.first else {
            node = value
            return nil
        }
        let here = walked.map(\.description).joined(separator: ".")
        let rest = path.dropFirst()
        switch segment {
        case .key(let key):
            var entries: [(key: String, value: ConfigNode)]
            if case .map(let existing, _) = node { entries = existing } else { entries = [] }
            let origin: ValueOrigin = {
                if case .map(_, let origin) = node { return origin }
                return .environment(name)
            }()
            if let position = entries.firstIndex(where: { $0.key == key }) {
                var child = entries[position].value
                if let error = set(value, at: rest, in: &child, walked: walked + [segment], name: name) { return error }
                entries[position].value = child
            } else {
                var child = ConfigNode.map([], origin: .environment(name))
                if let error = set(value, at: rest, in: &child, walked: walked + [segment], name: name) { return error }
                entries.append((key, child))
            }
            node = .map(entries, origin: origin)
            return nil
        case .index(let index):
            guard case .list(var items, let origin) = node, index < items.count else {
                let count: Int = {
                    if case .list(let items, _) = node { return items.count }
                    return 0
                }()
                return ConfigError(
                    path: "\(here).\(index)",
                    message: "\(name) refers to item \(index) but \(here) has \(count) item\(count == 1 ? "" : "s"); environment variables change existing list items only, so add the item to the file",
                    origin: nil)
            }
            var child = items[index]
            if let error = set(value, at: rest, in: &child, walked: walked + [segment], name: name) { return error }
            items[index] = child
            node = .list(items, origin: origin)
            return nil
        }
    }
}
