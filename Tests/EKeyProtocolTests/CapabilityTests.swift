@testable import EKeyProtocol
import Testing

/// The capability model and matcher (docs/spec/token.md).
struct CapabilityTests {
    func target(_ text: String) throws -> RequestTarget { try RequestTarget(validating: text) }

    @Test(arguments: [
        ("POST:/payments", "POST", "/payments", true), ("POST:/payments", "POST", "/payments?x=1", true),
        ("POST:/payments", "GET", "/payments", false), ("POST:/payments", "post", "/payments", false),
        ("POST:/payments", "POST", "/payments/", false), ("POST:/payments", "POST", "/paymentsx", false),
        ("POST:/payments", "POST", "/payments/1", false), ("POST:/payments/", "POST", "/payments/", true),
        ("GET:/payments/:id", "GET", "/payments/42", true), ("GET:/payments/:id", "GET", "/payments/", false),
        ("GET:/payments/:id", "GET", "/payments/42/refunds", false), ("GET:/payments/:id", "GET", "/payments", false),
        ("GET:/a/:x/c/:y", "GET", "/a/1/c/2", true), ("GET:/a/:x/c/:y", "GET", "/a/1/d/2", false),
        ("GET:/files/*", "GET", "/files/", true), ("GET:/files/*", "GET", "/files/a/b/c", true),
        ("GET:/files/*", "GET", "/files", false), ("GET:/files/*", "GET", "/filesx/a", false),
        ("GET:/*", "GET", "/", true), ("GET:/*", "GET", "/anything/at/all", true), ("GET:/", "GET", "/", true),
        ("GET:/", "GET", "/x", false), ("GET:/a%20b", "GET", "/a%20b", true), ("GET:/a%20b", "GET", "/a b", false),
        ("GET:/a%20b", "GET", "/a%2520b", false), ("GET:/Payments", "GET", "/payments", false),
    ])
    func matches(action: String, method: String, path: String, expected: Bool) throws {
        guard let request = try? target(path) else {
            #expect(!expected, "the path \(path) must be valid for a match")
            return
        }
        #expect(try CapabilityAction(parsing: action).matches(method: method, target: request) == expected)
    }

    @Test(arguments: [
        "/a/../b", "/a/./b", "/..", "/.", "/a/..", "/a/%2e%2e/b", "/a/%2E%2E/b", "/a/.%2e/b", "/a/%2e/b", "/a%2Fb", "/a%2fb",
        "/a%5Cb", "/a\\b", "//a", "/a//b", "/a///", "/a%", "/a%2", "/a%zz", "/a%g0", "/a%00b", "a/b", "", "*", "/a b", "/a\u{7F}",
        "/é", "/a/..;/b", "/a/.;x/b", "http://host/a", "/a#frag", "/a\r\nX: y",
        "/payments/;", "/payments/;x", "/users/;/sessions", "/;", "/a/;x/b", "/%70ayments/42", "/a%7Eb", "/a%7eb", "/a%61", "/a%2D", "/a%5F",
        "/a%30",
    ])
    func rejectsPathTricksBeforeAnythingElse(path: String) {
        let error = #expect(throws: EKeyError.self) { try RequestTarget(validating: path) }
        #expect(error?.code == .invalidRequest)
        #expect(error?.status == 400)
    }

    @Test(arguments: ["/", "/payments", "/payments/", "/a/b.c/d..e/...", "/a;b=c", "/a%20b/%C3%A9", "/a/b;x", "/a;/b", "/~user/@x:y", "/a?x=1&y=/..//%2F"])
    func acceptsCanonicalPaths(path: String) throws {
        let request = try target(path)
        #expect(request.path == String(path.prefix { $0 != "?" }))
    }

    @Test func subcapabilitiesMatchAndReportTheEntryAsWritten() throws {
        let capability = try Capability(
            action: CapabilityAction(parsing: "POST:/payments"), limit: 3,
            subcapabilities: [CapabilityAction(parsing: "GET:/payments/:id"), CapabilityAction(parsing: "GET:/receipts/*")])
        #expect(capability.matchingAction(method: "POST", target: try target("/payments"))?.description == "POST:/payments")
        #expect(capability.matchingAction(method: "GET", target: try target("/payments/7"))?.description == "GET:/payments/:id")
        #expect(capability.matchingAction(method: "GET", target: try target("/receipts/2026/1"))?.description == "GET:/receipts/*")
        #expect(capability.matchingAction(method: "DELETE", target: try target("/payments/7")) == nil)
    }

    @Test(arguments: [
        "POST/payments", "post:/payments", ":/payments", "POST:", "POST:payments", "POST:/a/*/b", "POST:/a/:", "POST:/a/../b",
        "POST:/a//b", "POST:/a%2Fb", "POST:/a?x=1", "TOOLONGMETHODNAMEXX:/a", "PO ST:/a",
    ])
    func refusesMalformedActions(action: String) {
        let error = #expect(throws: EKeyError.self) { try CapabilityAction(parsing: action) }
        #expect(error?.code == .invalidRequest)
    }

    @Test(arguments: [
        ("GET:/payments/42", "GET:/payments/:id", true), ("GET:/payments/:id", "GET:/payments/:id", true),
        ("GET:/payments/:other", "GET:/payments/:id", true), ("GET:/payments", "GET:/payments/:id", false),
        ("GET:/payments/42/x", "GET:/payments/:id", false), ("POST:/payments/42", "GET:/payments/:id", false),
        ("GET:/files/a/b", "GET:/files/*", true), ("GET:/files/*", "GET:/files/*", true), ("GET:/files/*", "GET:/files/:f", false),
        ("GET:/payments/:id", "GET:/payments/42", false), ("POST:/payments", "POST:/payments", true),
    ])
    func concreteInstancesOfTemplates(requested: String, template: String, expected: Bool) throws {
        #expect(try CapabilityAction(parsing: requested).isCovered(by: CapabilityAction(parsing: template)) == expected)
    }

    @Test func capClaimLimits() throws {
        for limit: Int64 in [0, -1, 1_000_000_001] {
            #expect(throws: EKeyError.self) { try Capability(json: ["action": "POST:/p", "limit": .integer(limit)]) }
        }
        #expect(throws: EKeyError.self) { try Capability(json: ["action": "POST:/p", "limit": 1, "subcap": "GET:/p"]) }
        let capability = try Capability(json: ["action": "POST:/p", "limit": 2, "scope": "create:payment", "subcap": ["GET:/p/:id"]])
        #expect(try Capability(json: capability.jsonValue) == capability)
    }
}

/// `CapabilityAction.parsed(_:)`, the cached parse the issuer and the gateway use per request.
struct ParsedCapabilityActionTests {
    @Test(arguments: ["POST:/payments", "GET:/payments/:id", "GET:/files/*", "GET:/", "GET:/a%20b"])
    func givesWhatTheParserGives(text: String) throws {
        let first = try CapabilityAction.parsed(text)
        #expect(first == (try CapabilityAction(parsing: text)))
        #expect(try CapabilityAction.parsed(text) == first)
    }

    /// Text canonically equivalent to a cached action, but with other bytes, is still refused:
    /// KELVIN SIGN (U+212A) equals "K" and GREEK QUESTION MARK (U+037E) equals ";" as Swift strings.
    @Test(arguments: [("POST:/K", "POST:/\u{212A}"), ("GET:/a;b", "GET:/a\u{037E}b")])
    func equivalentTextWithOtherBytesIsRefused(cached: String, lookalike: String) throws {
        #expect(cached == lookalike, "the two strings are equal for Swift")
        _ = try CapabilityAction.parsed(cached)
        #expect(throws: EKeyError.self) { try CapabilityAction.parsed(lookalike) }
    }

    @Test func malformedActionsAreRefusedEveryTime() {
        for _ in 0..<3 {
            #expect(throws: EKeyError.self) { try CapabilityAction.parsed("POST:/a/../b") }
            #expect(throws: EKeyError.self) { try CapabilityAction.parsed("post:/payments") }
        }
    }

    /// Many distinct actions (more than the cache holds) all parse right, before and after
    /// the cache starts afresh.
    @Test func manyDistinctActionsStayCorrect() throws {
        for index in 0..<(CapabilityAction.parsedCacheCapacity * 2 + 7) {
            let text = "GET:/items/\(index)"
            #expect(try CapabilityAction.parsed(text).path == "/items/\(index)")
        }
    }
}
