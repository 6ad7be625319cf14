public import EKeyProtocol

/// A key the publisher holds: the registered public JWK and its metadata. This is also
/// the record of the export/import format (`GET`/`PUT /internal/v1/keys`).
public struct PublishedKey: Sendable, Hashable {
    public var keyID: String
    /// The public JWK as registered (with `kid` and `alg`).
    public var jwk: JWK
    public var algorithm: JWSAlgorithm
    /// Epoch seconds after which the key signs nothing more; `nil` while it is in use.
    public var notAfter: Int64?
    /// Epoch seconds of the first registration.
    public var registeredAt: Int64
    /// The identity that registered it.
    public var registeredBy: String

    /// Creates a record.
    public init(keyID: String, jwk: JWK, algorithm: JWSAlgorithm, notAfter: Int64?, registeredAt: Int64, registeredBy: String) {
        self.keyID = keyID
        self.jwk = jwk
        self.algorithm = algorithm
        self.notAfter = notAfter
        self.registeredAt = registeredAt
        self.registeredBy = registeredBy
    }

    /// Whether the key is in the JWKS at `now`: until `retainSeconds` after `notAfter`,
    /// so tokens it signed stay verifiable until they expire.
    public func isPublished(at now: Int64, retainSeconds: Int64) -> Bool {
        guard let notAfter else { return true }
        return now < notAfter + retainSeconds
    }

    /// The canonical JSON of the public JWK: the publisher compares registrations by it.
    public var canonicalJWK: String { jwk.publicJWK.jsonValue.serialized() }

    /// The record as JSON (export format and stored form).
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "kid": .string(keyID), "jwk": jwk.publicJWK.jsonValue, "alg": .string(algorithm.rawValue),
            "registered_at": .integer(registeredAt), "registered_by": .string(registeredBy),
        ]
        if let notAfter { members["not_after"] = .integer(notAfter) }
        return .object(members)
    }

    /// Reads a record (import format). The JWK goes through the same checks as a
    /// registration: public only, `alg` present and supported, `kid` consistent.
    public init(jsonValue: JSONValue) throws(EKeyError) {
        guard let members = jsonValue.objectValue else {
            throw EKeyError(.invalidRequest, "each key record must be a JSON object")
        }
        let registration = try KeyRegistration(body: JSONValue.object([
            "kid": members["kid"] ?? .null, "jwk": members["jwk"] ?? .null, "not_after": members["not_after"] ?? .null,
        ]).serializedBytes())
        guard let registeredAt = members["registered_at"]?.integerValue else {
            throw EKeyError(.invalidRequest, "key \(registration.keyID): \"registered_at\" (epoch seconds) is required")
        }
        guard let registeredBy = members["registered_by"]?.stringValue else {
            throw EKeyError(.invalidRequest, "key \(registration.keyID): \"registered_by\" is required")
        }
        try self.init(registration: registration, registeredAt: registeredAt, registeredBy: registeredBy)
    }

    /// The record for a checked registration.
    public init(registration: KeyRegistration, registeredAt: Int64, registeredBy: String) throws(EKeyError) {
        guard let name = registration.jwk.algorithmName, let algorithm = try? JWSAlgorithm(headerValue: name) else {
            throw EKeyError(.invalidRequest, "jwk.alg must be ES256 or EdDSA")
        }
        self.init(
            keyID: registration.keyID, jwk: registration.jwk.publicJWK, algorithm: algorithm, notAfter: registration.notAfter,
            registeredAt: registeredAt, registeredBy: registeredBy)
    }
}
