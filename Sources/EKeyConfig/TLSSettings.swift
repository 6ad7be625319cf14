/// The `tls` block of a service: plaintext (`tls: none`) or TLS with these files.
public enum TLSSettings: Sendable, Hashable {
    /// `tls: none`: plaintext, for local debugging only; the service logs a loud warning at start.
    case none
    /// TLS with a certificate, a key and optionally client-certificate validation.
    case enabled(TLSFiles)

    /// `true` for `tls: none`.
    public var isPlaintext: Bool {
        if case .none = self { return true }
        return false
    }

    /// The TLS files, or `nil` for plaintext.
    public var files: TLSFiles? {
        if case .enabled(let files) = self { return files }
        return nil
    }
}

/// Files and options of a TLS listener. Paths are absolute (relative ones are resolved from
/// the config file's folder).
public struct TLSFiles: Sendable, Hashable {
    /// PEM certificate chain, leaf first (`cert`).
    public var cert: String
    /// PEM private key: SEC1 or PKCS#8, P-256 or Ed25519 (`key`).
    public var key: String
    /// PEM CA bundle that client certificates must chain to (`client_ca`).
    public var clientCA: String?
    /// Whether a client certificate is asked for (`client_auth`).
    public var clientAuth: ClientAuthMode
    /// Lowest TLS version accepted (`min_version`).
    public var minVersion: TLSMinimumVersion

    /// Creates TLS settings; `clientAuth` other than `.none` needs `clientCA`.
    public init(
        cert: String, key: String, clientCA: String? = nil, clientAuth: ClientAuthMode = .none,
        minVersion: TLSMinimumVersion = ConfigKeys.TLS.minVersion.defaultValue
    ) {
        self.cert = cert
        self.key = key
        self.clientCA = clientCA
        self.clientAuth = clientAuth
        self.minVersion = minVersion
    }
}

/// Client-certificate policy of a TLS listener (`client_auth`).
public enum ClientAuthMode: String, Sendable, Hashable, CaseIterable {
    /// No client certificate is asked for.
    case none
    /// A certificate is asked for; one that is presented must validate, or the handshake fails.
    case optional
    /// Every client must present a valid certificate.
    case required
}

/// Lowest TLS version of a listener (`min_version`).
public enum TLSMinimumVersion: String, Sendable, Hashable, CaseIterable {
    /// TLS 1.2 with AEAD ECDHE suites only (`"1.2"`).
    case tls12 = "1.2"
    /// TLS 1.3 only (`"1.3"`, the default).
    case tls13 = "1.3"
}
