/// Where the publisher keeps its keys: the shared store (so replicas agree) or memory.
public protocol PublishedKeyStore: Sendable {
    /// Registers `key` atomically: new kid → `.created`; the same public key again →
    /// `.alreadyRegistered` (with `not_after` updated when given); a kid bound to another
    /// key → `.conflict`, nothing changed.
    func register(_ key: PublishedKey) async throws -> KeyRegistrationResult
    /// Removes the key; `false` when no key had that kid.
    func revoke(keyID: String) async throws -> Bool
    /// Every stored key, including those past `not_after`.
    func all() async throws -> [PublishedKey]
    /// Replaces the whole set (disaster-recovery import).
    func replaceAll(with keys: [PublishedKey]) async throws
    /// Removes keys whose retention ended before `now`; returns how many.
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
}
