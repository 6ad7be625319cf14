public import EKeyProtocol
public import EKeyStore

/// The publisher's keys in the E-Key store: Redis (shared by every publisher replica,
/// surviving restarts) or the embedded memory store (lost on restart; the issuers
/// re-register their keys every 30 s).
public struct StoreBackedKeys: PublishedKeyStore {
    private let registry: any KeyRegistryStore
    private let health: any UsageStore

    /// Wraps the stores built from `store.url`.
    public init(stores: Stores) {
        registry = stores.keys
        health = stores.usage
    }

    public func register(_ key: PublishedKey) async throws -> KeyRegistrationResult {
        switch try await registry.put(Self.record(key)) {
        case .created: return .created
        case .unchanged: return .alreadyRegistered
        case .conflict: return .conflict
        }
    }

    public func revoke(keyID: String) async throws -> Bool {
        try await registry.revoke(kid: keyID)
    }

    public func all() async throws -> [PublishedKey] {
        try await registry.list().map(Self.key)
    }

    public func replaceAll(with keys: [PublishedKey]) async throws {
        try await registry.importAll(keys.map(Self.record))
    }

    /// Revokes each key whose retention has ended. A key cannot come back to life between
    /// the listing and the removal: its kid is bound to the same public key, so a new
    /// registration of it is refused or unchanged.
    public func purge(publishedBefore now: Int64, retainSeconds: Int64) async throws -> Int {
        var removed = 0
        for key in try await all() where !key.isPublished(at: now, retainSeconds: retainSeconds) {
            if try await registry.revoke(kid: key.keyID) { removed += 1 }
        }
        return removed
    }

    public func isReachable() async -> Bool {
        (try? await health.ping()) != nil
    }

    static func record(_ key: PublishedKey) -> RegisteredKey {
        RegisteredKey(kid: key.keyID, jwk: key.canonicalJWK, notAfter: key.notAfter, registeredAt: key.registeredAt, registeredBy: key.registeredBy)
    }

    /// A stored record back as a key; a record that no longer parses is a store defect and throws.
    static func key(_ record: RegisteredKey) throws -> PublishedKey {
        let jwk: JWK
        do {
            jwk = try JWK(parsing: try StrictJSONParser().parse(Array(record.jwk.utf8)), context: .publicOnly)
        } catch {
            throw StoredKeyDefect(description: "the stored key \(record.kid) is not a valid public JWK (\(error)); re-import the key set")
        }
        guard let name = jwk.algorithmName, let algorithm = try? JWSAlgorithm(headerValue: name) else {
            throw StoredKeyDefect(description: "the stored key \(record.kid) has no usable alg; re-import the key set")
        }
        return PublishedKey(
            keyID: record.kid, jwk: jwk, algorithm: algorithm, notAfter: record.notAfter, registeredAt: record.registeredAt,
            registeredBy: record.registeredBy)
    }

    struct StoredKeyDefect: Error, CustomStringConvertible {
        let description: String
    }
}
