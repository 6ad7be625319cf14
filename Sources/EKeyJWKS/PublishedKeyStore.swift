/// Where the publisher keeps its keys and the tombstones of revoked kids: the shared store
/// (so replicas agree) or memory.
public protocol PublishedKeyStore: Sendable {
    /// Registers `key` atomically: new kid → `.created`; the same public key again →
    /// `.alreadyRegistered` (with `not_after` updated when given); a kid bound to another
    /// key → `.conflict`; a revoked kid → `.revoked`. Nothing changes on a refusal.
    func register(_ key: PublishedKey) async throws -> KeyRegistrationResult
    /// Replaces the key by a tombstone kept until `forgetAfter`, atomically; a kid revoked
    /// before keeps its tombstone.
    func revoke(keyID: String, at revokedAt: Int64, forgetAfter: Int64) async throws -> KeyRevocationResult
    /// Every stored key, including those past `not_after`.
    func all() async throws -> [PublishedKey]
    /// Every tombstone, ordered by kid.
    func tombstones() async throws -> [Tombstone]
    /// Replaces the keys and adds `tombstones` to the stored ones (disaster-recovery
    /// import); refused, nothing changed, when a key's kid is revoked.
    func replaceAll(with keys: [PublishedKey], tombstones: [Tombstone]) async throws -> KeyImportResult
    /// Removes keys whose retention ended before `now` and tombstones whose `forget_after`
    /// has passed; returns how many.
    func purge(publishedBefore now: Int64, retainSeconds: Int64) async throws -> Int
    /// Whether the store answers (`/readyz`).
    func isReachable() async -> Bool
}

/// The outcome of ``PublishedKeyStore/register(_:)``.
public enum KeyRegistrationResult: Sendable, Equatable {
    case created
    case alreadyRegistered
    /// The kid is taken by a different key.
    case conflict
    /// The kid was revoked; it cannot be registered again, with any key.
    case revoked(Tombstone)
}

/// The outcome of ``PublishedKeyStore/revoke(keyID:at:forgetAfter:)``.
public enum KeyRevocationResult: Sendable, Equatable {
    /// The key was removed; its tombstone is stored.
    case revoked(Tombstone)
    /// The kid was revoked before; its tombstone is unchanged.
    case alreadyRevoked(Tombstone)
    /// No key and no tombstone has that kid.
    case unknown
}

/// The outcome of ``PublishedKeyStore/replaceAll(with:tombstones:)``.
public enum KeyImportResult: Sendable, Equatable {
    /// The keys replaced the stored ones; carries how many.
    case imported(Int)
    /// A key of the import has a revoked kid: nothing changed.
    case revokedKey(Tombstone)
}
