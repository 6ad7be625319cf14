/// A public key registered with the JWKS publisher (DESIGN.md §4).
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

/// The answer to `KeyRegistryStore.put`.
public enum KeyRegistrationOutcome: Sendable, Hashable {
    /// A new kid: 201. Carries the stored record.
    case created(RegisteredKey)
    /// The same key again: 200. Carries the stored record (first `registeredAt` and
    /// `registeredBy`; `notAfter` updated when the new registration gives one).
    case unchanged(RegisteredKey)
    /// The kid is bound to a different key: 409. Carries the existing record.
    case conflict(existing: RegisteredKey)
}

/// The publisher's key set, shared by publisher replicas. Errors are `StoreError`s.
public protocol KeyRegistryStore: Sendable {
    /// Registers `key` atomically: new, same again, or conflict.
    func put(_ key: RegisteredKey) async throws -> KeyRegistrationOutcome
    /// Removes `kid`; `false` when it was not registered.
    func revoke(kid: String) async throws -> Bool
    /// Every registered key, ordered by kid.
    func list() async throws -> [RegisteredKey]
    /// Replaces the whole key set with `keys` (disaster-recovery import).
    func importAll(_ keys: [RegisteredKey]) async throws
}
