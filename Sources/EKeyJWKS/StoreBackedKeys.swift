import EKeyProtocol
public import EKeyStore

/// The publisher's keys and tombstones in the E-Key store: Redis (shared by every
/// publisher replica, surviving restarts) or the embedded memory store (lost on restart;
/// the issuers re-register their keys every 30 s, but tombstones are lost with it).
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
        case .revoked(let revoked): return .revoked(Self.tombstone(revoked))
        }
    }

    public func revoke(keyID: String, at revokedAt: Int64, forgetAfter: Int64) async throws -> KeyRevocationResult {
        switch try await registry.revoke(kid: keyID, at: revokedAt, forgetAfter: forgetAfter) {
        case .revoked(let revoked): return .revoked(Self.tombstone(revoked))
        case .alreadyRevoked(let revoked): return .alreadyRevoked(Self.tombstone(revoked))
        case .unknown: return .unknown
        }
    }

    public func all() async throws -> [PublishedKey] {
        try await registry.list().map(Self.key)
    }

    public func tombstones() async throws -> [Tombstone] {
        try await registry.revokedKeys().map(Self.tombstone)
    }

    public func replaceAll(with keys: [PublishedKey], tombstones: [Tombstone]) async throws -> KeyImportResult {
        let revoked = tombstones.map { RevokedKey(kid: $0.keyID, revokedAt: $0.revokedAt, forgetAfter: $0.forgetAfter) }
        switch try await registry.importAll(keys.map(Self.record), revoked: revoked) {
        case .imported(let count): return .imported(count)
        case .revokedKey(let tombstone): return .revokedKey(Self.tombstone(tombstone))
        }
    }

    /// Removes, in one atomic store call, the keys whose retention has ended and the
    /// tombstones whose `forget_after` has passed. Deciding inside the store means a key
    /// revoked meanwhile is never removed together with its fresh tombstone.
    public func purge(publishedBefore now: Int64, retainSeconds: Int64) async throws -> Int {
        try await registry.purge(keysNotAfterUpTo: now - retainSeconds, tombstonesForgetAfterBefore: now)
    }

    public func isReachable() async -> Bool {
        (try? await health.ping()) != nil
    }

    static func tombstone(_ revoked: RevokedKey) -> Tombstone {
        Tombstone(keyID: revoked.kid, revokedAt: revoked.revokedAt, forgetAfter: revoked.forgetAfter)
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
