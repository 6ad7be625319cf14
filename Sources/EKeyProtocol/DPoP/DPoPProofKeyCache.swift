/// A proof key read from a proof's protected header: the key and its RFC 7638 thumbprint.
struct DPoPProofKey: Sendable {
    let jwk: JWK
    let key: PublicSigningKey
    let thumbprint: String
}

/// Proof keys already read, by the exact text of the proof's protected header.
///
/// A client signs every proof with the same key under the same header, so the gateway
/// would otherwise parse the same `jwk`, decode the same public key and hash the same
/// thumbprint on every request. What is kept is a pure function of the header text
/// (the key and its thumbprint, nothing about any proof or token), so a hit can never
/// accept what a miss would refuse: the signature, claims, `jti` and binding are checked
/// on every proof. Only headers whose `jwk` parsed as a public key are kept (each about
/// 1 KiB).
typealias DPoPProofKeyCache = BoundedMemo<DPoPProofKey>
