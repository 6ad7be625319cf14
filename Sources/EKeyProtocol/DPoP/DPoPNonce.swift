import Crypto

/// Stateless DPoP server nonces (RFC 9449 §9; docs/spec/gateway.md `gateway.dpop.nonce`).
///
/// A nonce is the truncated HMAC-SHA256, under a shared secret, of the index of a time
/// window. Every replica with the same secret issues and accepts the same nonces; a nonce
/// of the current or the previous window is accepted.
public struct DPoPNonceSource: Sendable {
    /// The shortest secret accepted, in bytes.
    public static let minimumSecretLength = 32

    private let key: SymmetricKey
    /// The window length in whole seconds: nonces index windows of epoch seconds.
    private let windowSeconds: Int64

    /// The window length, whole seconds (a fraction of a second is dropped).
    public var window: Duration { .seconds(windowSeconds) }

    /// Creates a source; the secret must be at least 32 bytes and the window at least 1 s.
    public init(secret: [UInt8], window: Duration) throws(EKeyError) {
        guard secret.count >= Self.minimumSecretLength else {
            throw EKeyError(
                .invalidRequest,
                "the DPoP nonce secret is \(secret.count) bytes; it must be at least \(Self.minimumSecretLength) (e.g. head -c 32 /dev/urandom | base64)")
        }
        let windowSeconds = window.components.seconds
        guard windowSeconds >= 1 else {
            throw EKeyError(.invalidRequest, "the DPoP nonce window must be at least 1 s")
        }
        self.key = SymmetricKey(data: secret)
        self.windowSeconds = windowSeconds
    }

    /// The nonce to hand out at `now` (epoch seconds).
    public func nonce(now: Int64) -> String {
        nonce(forWindow: now / windowSeconds)
    }

    /// Whether `nonce` belongs to the window of `now` or the one before.
    public func isCurrent(_ nonce: String, now: Int64) -> Bool {
        let index = now / windowSeconds
        let candidate = Array(nonce.utf8)
        return [index, index - 1].contains { constantTimeEqual(Array(self.nonce(forWindow: $0).utf8), candidate) }
    }

    private func nonce(forWindow index: Int64) -> String {
        var message = Array("ekey-dpop-nonce:".utf8)
        withUnsafeBytes(of: index.bigEndian) { message.append(contentsOf: $0) }
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
        return Base64URL.encode(Array(mac).prefix(18))
    }
}

/// Compares two byte strings in time independent of where they differ.
public func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices {
        difference |= lhs[index] ^ rhs[index]
    }
    return difference == 0
}
