import Synchronization

/// Keys held in the publisher's memory (embedded mode, `store.url: memory://`): lost on
/// restart, which the issuers repair by re-registering their keys every 30 s.
public final class MemoryPublishedKeyStore: PublishedKeyStore {
    private let keys = Mutex<[String: PublishedKey]>([:])

    /// Creates an empty store.
    public init() {}

    public func register(_ key: PublishedKey) async throws -> KeyRegistrationResult {
        keys.withLock { keys in
            guard var existing = keys[key.keyID] else {
                keys[key.keyID] = key
                return .created
            }
            guard existing.canonicalJWK == key.canonicalJWK else {
                return .conflict
            }
            if let notAfter = key.notAfter {
                existing.notAfter = notAfter
                keys[key.keyID] = existing
            }
            return .alreadyRegistered
        }
    }

    public func revoke(keyID: String) async throws -> Bool {
        keys.withLock { $0.removeValue(forKey: keyID) != nil }
    }

    public func all() async throws -> [PublishedKey] {
        keys.withLock { Array($0.values) }
    }

    public func replaceAll(with newKeys: [PublishedKey]) async throws {
        keys.withLock { keys in
            keys = Dictionary(newKeys.map { ($0.keyID, $0) }, uniquingKeysWith: { _, last in last })
        }
    }

    public func purge(publishedBefore now: Int64, retainSeconds: Int64) async throws -> Int {
        keys.withLock { keys in
            let expired = keys.values.filter { !$0.isPublished(at: now, retainSeconds: retainSeconds) }.map(\.keyID)
            for keyID in expired { keys.removeValue(forKey: keyID) }
            return expired.count
        }
    }

    public func isReachable() async -> Bool { true }
}
