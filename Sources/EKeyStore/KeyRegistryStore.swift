/// A public key registered with the JWKS publisher (docs/spec/publisher.md).
public struct RegisteredKey: Sendable, Hashable, Codable {
    public var kid: String
    /// The public JWK as a JSON string. Two registrations are the same key when these
    /// strings are equal, so pass one canonical form (for instance sorted keys).
    public var jwk: String
    /// Epoch seconds after which the key is no longer used for signing; `nil`: open-ended.
    public var notAfter: Int64?
    /// Epoch seconds of the first registration.
    public var registeredAt: Int64
    /// The identity that registered the key.
    public var registeredBy: String

    public init(kid: String, jwk: String, notAfter: Int64?, registeredAt: Int64, registeredBy: String) {
        self.kid = kid
        self.jwk = jwk
        self.notAfter = notAfter
        self.registeredAt = registeredAt
        self.registeredBy = registeredBy
    }

    enum CodingKeys: String, CodingKey {
        case kid, jwk
        case notAfter = "not_after"
        case registeredAt = "registered_at"
        case registeredBy = "registered_by"
    }
}

/// A revoked kid, remembered so that nobody can register it again: the tombstone takes
/// the place of the key's record.
public struct RevokedKey: Sendable, Hashable, Codable {
    public var kid: String
    /// Epoch seconds of the revocation.
    public var revokedAt: Int64
    /// Epoch seconds after which the tombstone may be forgotten (see ``KeyRegistryStore/purge(keysNotAfterUpTo:tombstonesForgetAfterBefore:)``).
    public var forgetAfter: Int64

    public init(kid: String, revokedAt: Int64, forgetAfter: Int64) {
        self.kid = kid
        self.revokedAt = revokedAt
        self.forgetAfter = forgetAfter
    }

    enum CodingKeys: String, CodingKey {
        case kid
        case revokedAt = "revoked_at"
        case forgetAfter = "forget_after"
    }
}

/// The answer to `KeyRegistryStore.put`.
public enum KeyRegistrationOutcome: Sendable, Hashable {
    /// A new kid: 201. Carries the stored record.
    case created(RegisteredKey)
    /// The same key again: 200. Carries the stored record (first `registeredAt` and
    /// `registeredBy`; `notAfter` updated when the new registration gives one).
    case unchanged(RegisteredKey)
    /// The kid is bound to a different key: 409. Carries the existing record.
    case conflict(existing: RegisteredKey)
    /// The kid was revoked: 410, whatever the key. Carries the tombstone.
    case revoked(RevokedKey)
}

/// The answer to `KeyRegistryStore.revoke`.
public enum KeyRevocationOutcome: Sendable, Hashable {
    /// The key was removed and its tombstone stored.
    case revoked(RevokedKey)
    /// The kid was revoked before; nothing changed. Carries the existing tombstone.
    case alreadyRevoked(RevokedKey)
    /// Neither a key nor a tombstone has that kid.
    case unknown
}

/// The answer to `KeyRegistryStore.importAll`.
public enum KeyImportOutcome: Sendable, Hashable {
    /// The keys replaced the stored ones; tombstones were added. Carries the number of keys.
    case imported(Int)
    /// A key of the import has a revoked kid (a stored or an imported tombstone): nothing changed.
    case revokedKey(RevokedKey)
}

/// The publisher's key set, shared by publisher replicas: registered keys and the
/// tombstones of revoked kids, one record per kid. Errors are `StoreError`s.
public protocol KeyRegistryStore: Sendable {
    /// Registers `key` atomically: new, same again, conflict, or revoked kid.
    func put(_ key: RegisteredKey) async throws -> KeyRegistrationOutcome
    /// Replaces the key `kid` by a tombstone kept until `forgetAfter`, atomically. A kid
    /// already revoked keeps its tombstone unchanged.
    func revoke(kid: String, at revokedAt: Int64, forgetAfter: Int64) async throws -> KeyRevocationOutcome
    /// Every registered key, ordered by kid.
    func list() async throws -> [RegisteredKey]
    /// Every tombstone, ordered by kid, including those that may be forgotten already.
    func revokedKeys() async throws -> [RevokedKey]
    /// Replaces the registered keys with `keys` and adds `revoked` to the stored
    /// tombstones (disaster-recovery import), atomically. Tombstones are never dropped by an
    /// import (of one kid, the later `forgetAfter` is kept), and a key whose kid is revoked
    /// refuses the whole import.
    func importAll(_ keys: [RegisteredKey], revoked: [RevokedKey]) async throws -> KeyImportOutcome
    /// Removes, atomically, the keys whose `notAfter` is at or before `keysNotAfterUpTo`
    /// (keys without one stay) and the tombstones whose `forgetAfter` is before
    /// `tombstonesForgetAfterBefore`; returns how many records went.
    func purge(keysNotAfterUpTo keyCutoff: Int64, tombstonesForgetAfterBefore tombstoneCutoff: Int64) async throws -> Int
}
