public import EKeyProtocol

/// A revoked kid the publisher remembers, so that no issuer can register it again (410
/// `key_revoked`) until `forgetAfter` has passed. This is also the record of the
/// export's `"revoked"` list (`GET`/`PUT /internal/v1/keys`).
public struct Tombstone: Sendable, Hashable {
    public var keyID: String
    /// Epoch seconds of the revocation.
    public var revokedAt: Int64
    /// Epoch seconds after which the tombstone may be forgotten: the revocation time plus `jwks.retain`.
    public var forgetAfter: Int64

    /// Creates a tombstone.
    public init(keyID: String, revokedAt: Int64, forgetAfter: Int64) {
        self.keyID = keyID
        self.revokedAt = revokedAt
        self.forgetAfter = forgetAfter
    }

    /// The record as JSON: `{"kid", "revoked_at", "forget_after"}`.
    public var jsonValue: JSONValue {
        .object(["kid": .string(keyID), "revoked_at": .integer(revokedAt), "forget_after": .integer(forgetAfter)])
    }

    /// Reads a record of an import's `"revoked"` list.
    public init(jsonValue: JSONValue) throws(EKeyError) {
        guard let members = jsonValue.objectValue else {
            throw EKeyError(.invalidRequest, "each record of \"revoked\" must be a JSON object {\"kid\", \"revoked_at\", \"forget_after\"}")
        }
        guard let keyID = members["kid"]?.stringValue, !keyID.isEmpty, keyID.utf8.count <= 128 else {
            throw EKeyError(.invalidRequest, "each record of \"revoked\" needs a \"kid\" of 1-128 characters")
        }
        guard let revokedAt = members["revoked_at"]?.integerValue, let forgetAfter = members["forget_after"]?.integerValue else {
            throw EKeyError(.invalidRequest, "revoked kid \(keyID): \"revoked_at\" and \"forget_after\" (epoch seconds) are required")
        }
        guard forgetAfter >= revokedAt else {
            throw EKeyError(.invalidRequest, "revoked kid \(keyID): \"forget_after\" is before \"revoked_at\"; import the file as exported")
        }
        self.init(keyID: keyID, revokedAt: revokedAt, forgetAfter: forgetAfter)
    }
}
