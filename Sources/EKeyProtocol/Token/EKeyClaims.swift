/// The payload of an E-Key (docs/spec/token.md), as the issuer encodes it and the gateway reads it.
public struct EKeyClaims: Sendable, Hashable {
    /// The longest lifetime any E-Key may have, in seconds.
    public static let maximumLifetime: Int64 = 60

    public var issuer: String
    public var subject: String
    public var audience: String
    public var issuedAt: Int64
    public var expiresAt: Int64
    public var capability: Capability
    public var confirmation: Confirmation
    /// 128-bit random, 32 lowercase hex characters; the usage-counter key.
    public var trace: String

    /// Creates claims.
    public init(
        issuer: String, subject: String, audience: String, issuedAt: Int64, expiresAt: Int64,
        capability: Capability, confirmation: Confirmation, trace: String
    ) {
        self.issuer = issuer
        self.subject = subject
        self.audience = audience
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.capability = capability
        self.confirmation = confirmation
        self.trace = trace
    }

    /// `exp - iat`.
    public var lifetime: Int64 { expiresAt - issuedAt }

    /// Reads claims from a payload; any missing or mistyped claim is `invalid_token`.
    public init(payload: [UInt8]) throws(EKeyError) {
        let members = try StrictJSONParser().parseObject(payload) { EKeyError(.invalidToken, "the token payload is not a valid JSON object: \($0)") }
        func string(_ name: String) throws(EKeyError) -> String {
            guard let value = members[name]?.stringValue, !value.isEmpty else {
                throw EKeyError(.invalidToken, "the token has no \"\(name)\" string claim")
            }
            return value
        }
        func time(_ name: String) throws(EKeyError) -> Int64 {
            guard let value = members[name]?.integerValue, value >= 0, value < 1 << 40 else {
                throw EKeyError(.invalidToken, "the token's \"\(name)\" must be an integer NumericDate")
            }
            return value
        }
        issuer = try string("iss")
        subject = try string("sub")
        if members["aud"]?.arrayValue != nil {
            throw EKeyError(.invalidToken, "the token's \"aud\" must be one string, not an array")
        }
        audience = try string("aud")
        issuedAt = try time("iat")
        expiresAt = try time("exp")
        guard let capabilityValue = members["cap"] else {
            throw EKeyError(.invalidToken, "the token has no \"cap\" claim")
        }
        do {
            capability = try Capability(json: capabilityValue)
        } catch {
            throw EKeyError(.invalidToken, "the token's cap is invalid: \(error.reason)")
        }
        guard let confirmationValue = members["cnf"] else {
            throw EKeyError(.invalidToken, "the token has no \"cnf\" claim")
        }
        confirmation = try Confirmation(json: confirmationValue)
        trace = try string("trace")
        guard Self.isTrace(trace) else {
            throw EKeyError(.invalidToken, "the token's trace must be 32 lowercase hex characters")
        }
    }

    /// The payload JSON as issued.
    public var jsonValue: JSONValue {
        .object([
            "iss": .string(issuer), "sub": .string(subject), "aud": .string(audience),
            "iat": .integer(issuedAt), "exp": .integer(expiresAt), "cap": capability.jsonValue,
            "cnf": confirmation.jsonValue, "trace": .string(trace),
        ])
    }

    /// ``jsonValue``'s bytes, written directly: the payload the issuer signs.
    public func serializedBytes() -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 320)
        writer.string("aud", audience)
        writer.value("cap") { $0.append(contentsOf: capability.serializedBytes()) }
        writer.value("cnf") { $0.append(contentsOf: confirmation.serializedBytes()) }
        writer.integer("exp", expiresAt)
        writer.integer("iat", issuedAt)
        writer.string("iss", issuer)
        writer.string("sub", subject)
        writer.string("trace", trace)
        return writer.finish()
    }

    /// Whether `text` is a well-formed trace: 32 lowercase hex characters.
    public static func isTrace(_ text: String) -> Bool {
        text.utf8.count == 32
            && text.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            }
    }

    /// A fresh random trace.
    public static func randomTrace() -> String {
        RandomBytes.hex(16)
    }
}
