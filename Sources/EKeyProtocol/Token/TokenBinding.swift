/// How a token is bound to its holder (the `bind` header and the `cnf` claim, docs/spec/token.md).
public enum BindingMode: String, Sendable, Hashable, CaseIterable {
    case dpop = "DPoP"
    case mtls = "mTLS"
}

/// The `cnf` claim as written in a token.
public enum Confirmation: Sendable, Hashable {
    /// `{"jkt": "<RFC 7638 thumbprint>"}`; for `bind: mTLS` the older E-Key form, where
    /// `jkt` holds the lowercase hex SHA-256 of the client certificate.
    case jwkThumbprint(String)
    /// `{"x5t#S256": "<base64url SHA-256 of the certificate DER>"}` (RFC 8705).
    case certificateThumbprint(String)

    /// Reads `cnf`: exactly one of `jkt` or `x5t#S256`, a string.
    public init(json: JSONValue) throws(EKeyError) {
        guard let members = json.objectValue else {
            throw EKeyError(.invalidToken, "the token's cnf must be an object")
        }
        switch (members["jkt"], members["x5t#S256"]) {
        case (.string(let jkt)?, nil):
            self = .jwkThumbprint(jkt)
        case (nil, .string(let x5t)?):
            self = .certificateThumbprint(x5t)
        default:
            throw EKeyError(.invalidToken, "the token's cnf must hold exactly one of \"jkt\" or \"x5t#S256\" as a string")
        }
    }

    /// The claim as issued.
    public var jsonValue: JSONValue {
        switch self {
        case .jwkThumbprint(let value): .object(["jkt": .string(value)])
        case .certificateThumbprint(let value): .object(["x5t#S256": .string(value)])
        }
    }

    /// ``jsonValue``'s bytes, written directly.
    public func serializedBytes() -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 64)
        switch self {
        case .jwkThumbprint(let value): writer.string("jkt", value)
        case .certificateThumbprint(let value): writer.string("x5t#S256", value)
        }
        return writer.finish()
    }
}

/// What the gateway must check for the token's holder, after `bind` and `cnf` agreed.
public enum TokenBinding: Sendable, Hashable {
    /// A DPoP proof signed by the key with this RFC 7638 thumbprint.
    case dpop(jwkThumbprint: String)
    /// The TLS client certificate whose DER has this SHA-256.
    case mtls(certificateSHA256: [UInt8])

    /// The binding mode.
    public var mode: BindingMode {
        switch self {
        case .dpop: .dpop
        case .mtls: .mtls
        }
    }

    /// Resolves `bind` and `cnf` (docs/spec/token.md): DPoP ↔ `jkt` thumbprint; mTLS ↔ `x5t#S256`
    /// or the legacy hex `jkt`; no `bind` → read by `cnf`.
    public init(bind: BindingMode?, confirmation: Confirmation) throws(EKeyError) {
        switch (bind, confirmation) {
        case (.dpop?, .jwkThumbprint(let jkt)), (nil, .jwkThumbprint(let jkt)):
            guard let bytes = try? Base64URL.decode(jkt), bytes.count == 32 else {
                throw EKeyError(.invalidToken, "cnf.jkt must be a base64url SHA-256 thumbprint (43 characters)")
            }
            self = .dpop(jwkThumbprint: jkt)
        case (.mtls?, .certificateThumbprint(let x5t)), (nil, .certificateThumbprint(let x5t)):
            guard let bytes = try? Base64URL.decode(x5t), bytes.count == 32 else {
                throw EKeyError(.invalidToken, "cnf.x5t#S256 must be a base64url SHA-256 (43 characters)")
            }
            self = .mtls(certificateSHA256: bytes)
        case (.mtls?, .jwkThumbprint(let hex)):
            guard let bytes = Self.lowercaseHex(hex), bytes.count == 32 else {
                throw EKeyError(.invalidToken, "an mTLS token's legacy cnf.jkt must be 64 lowercase hex characters")
            }
            self = .mtls(certificateSHA256: bytes)
        case (.dpop?, .certificateThumbprint):
            throw EKeyError(.invalidToken, "bind is DPoP but cnf holds a certificate thumbprint")
        }
    }

    private static func lowercaseHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = lowercaseHexValue(digits[index]), let low = lowercaseHexValue(digits[index + 1]) else {
                return nil
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func lowercaseHexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
