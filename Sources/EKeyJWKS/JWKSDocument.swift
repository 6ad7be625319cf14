import Crypto
import EKeyProtocol

/// The published key set as it goes on the wire: the JSON bytes and their entity tag.
///
/// The tag is a strong ETag derived from the bytes (SHA-256, first 16 bytes, base64url),
/// so every publisher replica computes the same tag for the same set and a gateway's
/// `If-None-Match` works against any of them.
public struct JWKSDocument: Sendable, Equatable {
    /// `{"keys":[...]}`, keys sorted by `kid`, public members only, each with `kid`, `alg`, `use`.
    public let body: [UInt8]
    /// The quoted entity tag.
    public let entityTag: String

    /// Renders the keys that are live at `now` (epoch seconds): a key leaves the set
    /// `retainSeconds` after its `not_after`.
    public init(keys: [PublishedKey], now: Int64, retainSeconds: Int64) {
        let live = keys.filter { $0.isPublished(at: now, retainSeconds: retainSeconds) }.sorted { $0.keyID < $1.keyID }
        let set = JWKSet(keys: live.map { $0.jwk.with(keyID: $0.keyID, algorithm: $0.algorithm, use: "sig") })
        body = set.jsonValue.serializedBytes()
        let digest = Array(SHA256.hash(data: body).prefix(16))
        entityTag = "\"" + Base64URL.encode(digest) + "\""
    }

    /// Whether an `If-None-Match` header value matches this document (`*`, or one of a
    /// comma-separated list of tags; weak tags compare by their opaque part).
    public func matches(ifNoneMatch header: String) -> Bool {
        for candidate in header.split(separator: ",") {
            var tag = candidate.trimmingWhitespace()
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = String(tag.dropFirst(2)) }
            if tag == entityTag { return true }
        }
        return false
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
