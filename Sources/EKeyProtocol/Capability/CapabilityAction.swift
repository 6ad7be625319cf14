import Synchronization

/// One capability entry, `METHOD:/path` (docs/spec/token.md).
///
/// Path segments `:name` match exactly one non-empty segment; a final `/*` matches any
/// suffix after that `/` (so `/files/*` matches `/files/` and `/files/a/b`, not `/files`).
/// Literal segments compare exactly, byte for byte, as the client sent them.
public struct CapabilityAction: Sendable, Hashable, CustomStringConvertible {
    /// A segment of the path pattern.
    public enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
        case rest
    }

    /// The HTTP method, upper case.
    public let method: String
    /// The path pattern as written.
    public let path: String
    /// The parsed pattern.
    public let segments: [Segment]

    /// The action as written (`METHOD:/path`).
    public var description: String { "\(method):\(path)" }

    /// Parses `METHOD:/path`.
    public init(parsing text: String) throws(EKeyError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw Self.invalid(text, "it has no ':' between method and path")
        }
        let method = String(text[..<colon])
        let path = String(text[text.index(after: colon)...])
        guard (1...16).contains(method.utf8.count),
            method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") })
        else { throw Self.invalid(text, "the method must be 1-16 upper-case letters") }
        guard path.hasPrefix("/") else { throw Self.invalid(text, "the path must start with '/'") }
        guard !path.contains("?") else { throw Self.invalid(text, "the path must not carry a query") }
        let rawSegments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Segment] = []
        segments.reserveCapacity(rawSegments.count)
        var hasPattern = false
        for (position, raw) in rawSegments.enumerated() {
            let isLast = position == rawSegments.count - 1
            if raw == "*" {
                guard isLast else { throw Self.invalid(text, "'*' may only be the final segment") }
                segments.append(.rest)
                hasPattern = true
            } else if raw.first == ":" {
                hasPattern = true
                let name = raw.dropFirst()
                guard !name.isEmpty,
                    name.utf8.allSatisfy({ RequestTarget.isPathCharacter($0) && $0 != UInt8(ascii: "/") })
                else { throw Self.invalid(text, "a ':name' segment needs a name") }
                segments.append(.parameter(String(name)))
            } else {
                segments.append(.literal(String(raw)))
            }
        }
        // The path with every pattern segment replaced by a stand-in literal must be one a
        // request could send; without pattern segments, that is the path itself.
        let literalPath =
            hasPattern
            ? "/" + segments.map { segment -> String in
                if case .literal(let value) = segment { return value }
                return "x"
            }.joined(separator: "/") : path
        do {
            _ = try RequestTarget(validating: literalPath)
        } catch {
            throw Self.invalid(text, error.reason)
        }
        self.method = method
        self.path = path
        self.segments = segments
    }

    /// ``init(parsing:)``, answered from a bounded cache of the actions parsed lately: the
    /// issuer and the gateway read the same few actions in every request and token. Only
    /// actions that parsed are kept (a malformed one is parsed, and refused, each time), and
    /// the cache starts afresh once it holds ``parsedCacheCapacity`` actions, so no input can
    /// grow it. Only ASCII text is looked up: `String` equality is canonical equivalence, so
    /// `POST:/\u{212A}` (KELVIN SIGN) equals `POST:/K`, while an action compares byte for
    /// byte. Every action that parses is ASCII, so other text goes to the parser, which refuses it.
    public static func parsed(_ text: String) throws(EKeyError) -> CapabilityAction {
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else { return try CapabilityAction(parsing: text) }
        if let known = parsedCache.withLock({ $0[text] }) { return known }
        let action = try CapabilityAction(parsing: text)
        parsedCache.withLock { cache in
            if cache.count >= parsedCacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[text] = action
        }
        return action
    }

    /// How many parsed actions ``parsed(_:)`` keeps.
    static let parsedCacheCapacity = 512
    private static let parsedCache = Mutex<[String: CapabilityAction]>([:])

    private static func invalid(_ text: String, _ reason: String) -> EKeyError {
        EKeyError(.invalidRequest, "the capability action \"\(text.prefix(64))\" is malformed: \(reason) (form: METHOD:/path)")
    }

    /// Whether a request with `method` and validated `target` matches this action.
    public func matches(method requestMethod: String, target: RequestTarget) -> Bool {
        guard requestMethod == method else { return false }
        let requestSegments = target.segments
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .rest:
                return index < requestSegments.count
            case .literal(let literal):
                guard index < requestSegments.count, requestSegments[index] == literal else { return false }
            case .parameter:
                guard index < requestSegments.count, !requestSegments[index].isEmpty else { return false }
            }
        }
        return segments.count == requestSegments.count
    }

    /// Whether this action is `template` itself or a concrete instance of it (docs/spec/issuer.md):
    /// `GET:/payments/42` and `GET:/payments/:id` are both covered by `GET:/payments/:id`.
    public func isCovered(by template: CapabilityAction) -> Bool {
        guard method == template.method else { return false }
        for (index, templateSegment) in template.segments.enumerated() {
            guard index < segments.count else { return false }
            switch (templateSegment, segments[index]) {
            case (.rest, _):
                return true
            case (.literal(let expected), .literal(let actual)):
                guard expected == actual else { return false }
            case (.parameter, .literal(let actual)):
                guard !actual.isEmpty else { return false }
            case (.parameter, .parameter):
                continue
            default:
                return false
            }
        }
        return segments.count == template.segments.count
    }
}
