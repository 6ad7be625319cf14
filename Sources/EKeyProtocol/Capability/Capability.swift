/// The `cap` claim: what one E-Key allows, and how often (docs/spec/token.md).
public struct Capability: Sendable, Hashable {
    /// The main action.
    public let action: CapabilityAction
    /// An optional scope string, passed through.
    public let scope: String?
    /// How many requests the token allows in all (>= 1).
    public let limit: Int
    /// Further actions the same token allows.
    public let subcapabilities: [CapabilityAction]

    /// The largest `limit` a token may carry.
    public static let maximumLimit = 1_000_000_000

    /// Creates a capability, checking `limit`.
    public init(action: CapabilityAction, scope: String? = nil, limit: Int, subcapabilities: [CapabilityAction] = [])
        throws(EKeyError)
    {
        guard (1...Self.maximumLimit).contains(limit) else {
            throw EKeyError(.invalidRequest, "cap.limit must be between 1 and \(Self.maximumLimit), not \(limit)")
        }
        self.action = action
        self.scope = scope
        self.limit = limit
        self.subcapabilities = subcapabilities
    }

    /// Reads a `cap` object; defects are reported as `invalid_request`.
    public init(json: JSONValue) throws(EKeyError) {
        guard let members = json.objectValue else {
            throw EKeyError(.invalidRequest, "cap must be an object {\"action\", \"limit\", ...}")
        }
        guard let actionText = members["action"]?.stringValue else {
            throw EKeyError(.invalidRequest, "cap.action must be a string METHOD:/path")
        }
        guard let limit = members["limit"]?.integerValue else {
            throw EKeyError(.invalidRequest, "cap.limit must be an integer >= 1")
        }
        var scope: String?
        if let scopeValue = members["scope"], scopeValue != .null {
            guard let text = scopeValue.stringValue else {
                throw EKeyError(.invalidRequest, "cap.scope must be a string")
            }
            scope = text
        }
        var subcapabilities: [CapabilityAction] = []
        if let subcapValue = members["subcap"], subcapValue != .null {
            guard let entries = subcapValue.arrayValue, entries.count <= 32 else {
                throw EKeyError(.invalidRequest, "cap.subcap must be an array of at most 32 actions")
            }
            for entry in entries {
                guard let text = entry.stringValue else {
                    throw EKeyError(.invalidRequest, "cap.subcap entries must be strings METHOD:/path")
                }
                subcapabilities.append(try CapabilityAction.parsed(text))
            }
        }
        guard limit >= 1, limit <= Int64(Self.maximumLimit) else {
            throw EKeyError(.invalidRequest, "cap.limit must be between 1 and \(Self.maximumLimit), not \(limit)")
        }
        try self.init(
            action: try CapabilityAction.parsed(actionText), scope: scope, limit: Int(limit),
            subcapabilities: subcapabilities)
    }

    /// The `cap` object as issued.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["action": .string(action.description), "limit": .integer(Int64(limit))]
        if let scope { members["scope"] = .string(scope) }
        if !subcapabilities.isEmpty { members["subcap"] = .array(subcapabilities.map { .string($0.description) }) }
        return .object(members)
    }

    /// ``jsonValue``'s bytes, written directly.
    public func serializedBytes() -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 64)
        writer.string("action", action.description)
        writer.integer("limit", Int64(limit))
        if let scope { writer.string("scope", scope) }
        if !subcapabilities.isEmpty {
            writer.value("subcap") { bytes in
                JSONValue.array(subcapabilities.map { .string($0.description) }).write(into: &bytes)
            }
        }
        return writer.finish()
    }

    /// Every action this capability allows: ``action`` first, then ``subcapabilities``.
    public var allActions: [CapabilityAction] { [action] + subcapabilities }

    /// The entry a request matches (docs/spec/gateway.md step 4), or `nil`.
    public func matchingAction(method: String, target: RequestTarget) -> CapabilityAction? {
        allActions.first { $0.matches(method: method, target: target) }
    }
}
