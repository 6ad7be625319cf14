internal import Synchronization

/// Proof keys already read, by the exact text of the proof's protected header.
///
/// A client signs every proof with the same key under the same header, so the gateway
/// would otherwise parse the same `jwk`, decode the same public key and hash the same
/// RFC 7638 thumbprint on every request. What is kept is a pure function of the header
/// text (the key and its thumbprint, nothing about any proof or token), so a hit can
/// never accept what a miss would refuse: the signature, claims, `jti` and binding are
/// checked on every proof. Only headers whose `jwk` parsed as a public key are stored;
/// when full, the cache starts over, so a flood of distinct headers costs time, not memory.
final class DPoPProofKeyCache: Sendable {
    /// A proof key read from a header.
    struct Entry: Sendable {
        let jwk: JWK
        let key: PublicSigningKey
        let thumbprint: String
    }

    /// Headers kept at most (each entry is about 1 KiB).
    let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    /// The key read before from exactly this header text.
    func entry(forHeader header: String) -> Entry? {
        entries.withLock { $0[header] }
    }

    /// Keeps the key read from `header`.
    func insert(_ entry: Entry, forHeader header: String) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[header] = entry
        }
    }

    /// Number of headers held.
    var count: Int { entries.withLock { $0.count } }
}
