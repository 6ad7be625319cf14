import EKeyProtocol
import NIOConcurrencyHelpers

/// Tokens whose signature has verified, by their exact text, so that a token used many times
/// (a limit above 1, an mTLS-bound token) costs one signature check, not one per request.
/// Envoy's `jwt_authn` filter keeps the same kind of cache.
///
/// Only the signature and the decoding of the claims are skipped on a hit. Every use still
/// checks that the publisher serves the same key under the token's `kid` (a rotated or revoked
/// key ends the entry), and runs `iss`, `aud`, `exp`, `iat`, lifetime and binding again
/// (``EKeyToken/validate(_:bind:keyID:policy:now:)``). Rejected tokens are never stored, nor
/// are tokens with a limit of 1, whose first use is their only one.
final class VerifiedTokenCache: Sendable {
    /// What a verified token's signature established.
    struct Entry: Sendable {
        /// The publisher's key that verified it.
        let jwk: JWK
        let keyID: String
        let bind: BindingMode?
        let claims: EKeyClaims
    }

    /// Entries kept at most; at about 1 KiB each, a few MiB.
    let capacity: Int
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    /// The entry for exactly this token text, if its signature verified before.
    func entry(for token: String) -> Entry? {
        entries.withLockedValue { $0[token] }
    }

    /// Stores a token that passed every check. When full, entries that expired more than
    /// `clockSkew` ago go first; if that frees less than a quarter of the cache, it starts
    /// over, so a full cache is never scanned again a few inserts later.
    func insert(_ entry: Entry, for token: String, now: Int64, clockSkew: Int64) {
        entries.withLockedValue { entries in
            if entries.count >= capacity {
                entries = entries.filter { now <= $0.value.claims.expiresAt + clockSkew }
                if entries.count > capacity - capacity / 4 { entries.removeAll(keepingCapacity: true) }
            }
            entries[token] = entry
        }
    }

    /// Forgets a token (its key is no longer the publisher's).
    func remove(_ token: String) {
        _ = entries.withLockedValue { $0.removeValue(forKey: token) }
    }

    /// Number of tokens held.
    var count: Int { entries.withLockedValue { $0.count } }
}
