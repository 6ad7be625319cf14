/// The shape of the configuration file (docs/configuration.md): which keys exist at each level.
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

/// The schema of the whole stack file.
enum ConfigSchema {
    static let tls = SchemaNode.noneOrMap([
        ("cert", .scalar), ("key", .scalar), ("client_ca", .scalar), ("client_auth", .scalar), ("min_version", .scalar),
    ])
    static let clientFiles = SchemaNode.map([("url", .scalar), ("ca", .scalar), ("cert", .scalar), ("key", .scalar)])
    static let timeouts = SchemaNode.map([("connect", .scalar), ("first_byte", .scalar), ("idle", .scalar)])

    static let store = SchemaNode.map([("url", .scalar), ("prefix", .scalar)])

    static let issuer = SchemaNode.map([
        ("listen", .scalar), ("admin_listen", .scalar), ("issuer_url", .scalar), ("jwks_uri", .scalar),
        ("clock_skew", .scalar), ("tls", tls),
        ("signing", .map([("alg", .scalar), ("rotate_every", .scalar), ("key_file", .scalar)])),
        ("publisher", clientFiles),
        ("clients", .list(.map([("id", .scalar), ("jkt", .scalar)]))),
        ("idps", .list(.map([
            ("name", .scalar), ("issuer", .scalar), ("audience", .scalar), ("jwks_uri", .scalar),
            ("jwks_file", .scalar), ("subject_claim", .scalar),
        ]))),
        ("templates", .list(.map([
            ("name", .scalar), ("subjects", .scalarList), ("audiences", .scalarList), ("actions", .scalarList),
            ("max_limit", .scalar), ("max_ttl", .scalar), ("binds", .scalarList), ("rate_per_minute", .scalar),
            ("delegate_subjects", .scalarList),
        ]))),
    ])

    static let gateway = SchemaNode.map([
        ("listen", .scalar), ("admin_listen", .scalar), ("tls", tls), ("issuer", .scalar), ("jwks", clientFiles),
        ("clock_skew", .scalar),
        ("dpop", .map([
            ("max_age", .scalar), ("require_ath", .scalar), ("nonce", .scalar), ("nonce_window", .scalar),
            ("nonce_secret_file", .scalar),
        ])),
        ("timeouts", timeouts),
        ("routes", .list(.map([
            ("prefix", .scalar), ("upstream", .scalar), ("audience", .scalar), ("public_origin", .scalar),
            ("upstream_ca", .scalar), ("timeouts", timeouts),
        ]))),
    ])

    static let jwks = SchemaNode.map([
        ("listen", .scalar), ("admin_listen", .scalar), ("tls", tls), ("authorized_issuers", .scalarList),
        ("admins", .scalarList), ("cache_max_age", .scalar), ("retain", .scalar),
    ])

    static let tracing = SchemaNode.map([("endpoint", .scalar)])

    static let root = SchemaNode.map([
        ("store", store), ("issuer", issuer), ("gateway", gateway), ("jwks", jwks), ("tracing", tracing),
    ])
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
