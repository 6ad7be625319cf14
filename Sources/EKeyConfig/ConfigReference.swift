import Foundation

/// The key tables of docs/configuration.md, written from ``ConfigKeys``.
///
/// Each table sits between `<!-- BEGIN generated keys: NAME -->` and
/// `<!-- END generated keys -->`; the prose around them is the document's own.
/// `make config-docs` rewrites them, and a test fails when they differ.
enum ConfigReference {
    /// A table's markers were not found, or not in pairs.
    struct MarkerError: Error, CustomStringConvertible {
        let description: String
    }

    static let beginMarker = "<!-- BEGIN generated keys: "
    static let endMarker = "<!-- END generated keys -->"

    /// Every table by its marker name: one per section, and the shared `tls` block.
    static var tables: [(name: String, text: String)] {
        let sections = [ConfigKeys.Store.block, ConfigKeys.Tracing.block, ConfigKeys.Issuer.block, ConfigKeys.Gateway.block, ConfigKeys.JWKS.block]
        return sections.map { ($0.name, sectionTable($0)) } + [("tls", blockTable(ConfigKeys.TLS.block))]
    }

    /// `document` with every generated table replaced by what the declarations make.
    static func rewrite(_ document: String) throws(MarkerError) -> String {
        var text = document
        for (name, table) in tables {
            let begin = beginMarker + name + " -->"
            guard let start = text.range(of: begin), let end = text.range(of: endMarker, range: start.upperBound..<text.endIndex)
            else { throw MarkerError(description: "no \(begin) ... \(endMarker) pair for the \(name) keys") }
            text.replaceSubrange(start.upperBound..<end.lowerBound, with: "\n" + table)
        }
        return text
    }

    /// A section's keys with their paths and `EKEY_*` names.
    static func sectionTable(_ section: ConfigBlock) -> String {
        let rows = rows(section, path: section.name, environment: "EKEY_" + section.name.uppercased(), inheritedDefault: nil)
        return (["| key | type | default | env | meaning |", "| --- | --- | --- | --- | --- |"] + rows)
            .map { $0 + "\n" }.joined()
    }

    /// A block documented once (`tls`): its keys by name, without environment names.
    static func blockTable(_ block: ConfigBlock) -> String {
        var lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for case .key(let key) in block.members {
            lines.append("| `\(key.name)` | \(key.typeText) | \(key.defaultText) | \(markdown(key.doc)) |")
        }
        return lines.map { $0 + "\n" }.joined()
    }

    private static func rows(_ block: ConfigBlock, path: String, environment: String, inheritedDefault: String?) -> [String] {
        block.members.flatMap { member -> [String] in
            switch member {
            case .key(let key):
                let name = "\(environment)_\(key.name.uppercased())"
                return ["| `\(path).\(key.name)` | \(key.typeText) | \(inheritedDefault ?? key.defaultText) | `\(name)` | \(markdown(key.doc)) |"]
            case .block(let child):
                let childEnvironment = "\(environment)_\(child.name.uppercased())"
                if let summary = child.summary {
                    let names = [childEnvironment] + child.members.prefix(1).map { "\(childEnvironment)_\($0.name.uppercased())" }
                    let shown = names.map { "`\($0)`" }.joined(separator: ", ") + ", ..."
                    return ["| `\(path).\(child.name)` | \(summary.type) | \(summary.default) | \(shown) | \(markdown(summary.doc)) |"]
                }
                let isList = child.form == .list
                return rows(
                    child, path: "\(path).\(child.name)" + (isList ? "[]" : ""),
                    environment: childEnvironment + (isList ? "_<i>" : ""),
                    inheritedDefault: child.inheritedDefault ?? inheritedDefault)
            }
        }
    }

    /// A doc line as table text: `<` would open an HTML tag, `|` a new column.
    private static func markdown(_ doc: String) -> String {
        doc.replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: "|", with: "\\|")
    }
}
