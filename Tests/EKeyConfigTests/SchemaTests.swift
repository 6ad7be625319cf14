@testable import EKeyConfig
import XCTest

/// The schema's environment names are unambiguous, and ambiguity would be reported.
final class SchemaTests: XCTestCase {
    /// Every path of the schema, with list items at index 0.
    private func paths(_ schema: SchemaNode, prefix: [EnvironmentOverrides.Segment] = []) -> [[EnvironmentOverrides.Segment]] {
        switch schema {
        case .scalar, .scalarList:
            return [prefix]
        case .list(let item):
            return [prefix] + paths(item, prefix: prefix + [.index(0)])
        case .map(let entries), .noneOrMap(let entries):
            let own: [[EnvironmentOverrides.Segment]] = prefix.isEmpty ? [] : [prefix]
            return own + entries.flatMap { paths($0.value, prefix: prefix + [.key($0.key)]) }
        }
    }

    func testEveryKeyHasExactlyOneEnvironmentName() {
        let all = paths(ConfigSchema.root)
        XCTAssertGreaterThan(all.count, 80)
        for path in all {
            let name = path.map(\.description).joined(separator: "_").uppercased()
            XCTAssertEqual(EnvironmentOverrides.matches(name), [path], "EKEY_\(name)")
        }
    }

    func testAmbiguousNameIsAnError() {
        let schema = SchemaNode.map([("a_b", .scalar), ("a", .map([("b", .scalar)]))])
        var tree = ConfigNode.map([], origin: .unknown)
        var overrides = EnvironmentOverrides()
        overrides.apply(["EKEY_A_B": "1"], to: &tree, schema: schema)
        XCTAssertEqual(overrides.errors.count, 1)
        XCTAssertTrue(overrides.errors[0].message.contains("EKEY_A_B is ambiguous: it could set a_b, a.b"), "\(overrides.errors)")
    }
}
