/// What a declared key tells the schema check, the environment matcher and the docs table.
protocol DeclaredKey: Sendable {
    /// The key's name in its block (`max_age`).
    var name: String { get }
    /// Its shape: one value or a list of values.
    var shape: SchemaNode { get }
    /// The docs table's type column.
    var typeText: String { get }
    /// The docs table's default column.
    var defaultText: String { get }
    /// One line on what the key means; for a required key, also the hint of "is required".
    var doc: String { get }
}

/// A key with a default: absent, or bad (the error is recorded), it reads as ``defaultValue``.
/// An optional key is a `ConfigKey<T?>` whose default is `nil`.
@usableFromInline
struct ConfigKey<Value: Sendable>: DeclaredKey {
    let name: String
    let type: ValueType<Value>
    @usableFromInline let defaultValue: Value
    let doc: String
    private let shownDefault: String?

    /// Declares a key; `shownDefault` replaces the default's own text in the docs.
    init(_ name: String, _ type: ValueType<Value>, default value: Value, shownDefault: String? = nil, doc: String) {
        self.name = name
        self.type = type
        self.defaultValue = value
        self.shownDefault = shownDefault
        self.doc = doc
    }

    var shape: SchemaNode { type.shape }
    var typeText: String { type.text }
    var defaultText: String { shownDefault ?? type.show(defaultValue) }
}

/// A key the section needs; absent, it is reported with its ``doc`` as the hint.
struct RequiredKey<Value: Sendable>: DeclaredKey {
    let name: String
    let type: ValueType<Value>
    let doc: String

    /// Declares a required key; `doc` completes "is required: ...".
    init(_ name: String, _ type: ValueType<Value>, doc: String) {
        self.name = name
        self.type = type
        self.doc = doc
    }

    var shape: SchemaNode { type.shape }
    var typeText: String { type.text }
    var defaultText: String { "required" }
}

/// A nested block of keys: a map, a list of maps, or `none` or a map (`tls`).
struct ConfigBlock: Sendable {
    enum Form: Sendable {
        case map, list, noneOrMap
    }

    /// A key or a nested block.
    enum Member: Sendable {
        case key(any DeclaredKey)
        case block(ConfigBlock)

        var name: String {
            switch self {
            case .key(let key): key.name
            case .block(let block): block.name
            }
        }
    }

    /// One row standing for a block documented in a table of its own (`tls`).
    struct Summary: Sendable {
        let type: String
        let `default`: String
        let doc: String
    }

    let name: String
    let form: Form
    let members: [Member]
    /// Set for a block documented once in its own table rather than under every section.
    let summary: Summary?
    /// The default column of every key inside, when the block falls back to another one.
    private(set) var inheritedDefault: String?

    init(_ name: String, _ form: Form, _ members: [Member], summary: Summary? = nil) {
        self.name = name
        self.form = form
        self.members = members
        self.summary = summary
    }

    /// The same block whose keys default to another block's values, as `shownDefault` says.
    func inheriting(_ shownDefault: String) -> ConfigBlock {
        var copy = self
        copy.inheritedDefault = shownDefault
        return copy
    }

    /// The shape this block allows.
    var schema: SchemaNode {
        let entries = members.map { member -> (key: String, value: SchemaNode) in
            switch member {
            case .key(let key): (key.name, key.shape)
            case .block(let block): (block.name, block.schema)
            }
        }
        switch form {
        case .map: return .map(entries)
        case .list: return .list(.map(entries))
        case .noneOrMap: return .noneOrMap(entries)
        }
    }
}
