import Glibc

/// `gateway.authorize`: verify-only mode, the gateway's checks answered to a proxy that
/// forwards requests itself (docs/authorize.md). Keys and defaults: ``ConfigKeys/Gateway/Authorize``.
public struct AuthorizeConfig: Sendable, Hashable {
    /// `listen`: the authorization listener.
    public var listen: ListenAddress
    /// `tls`: its TLS; `none` only on a loopback address.
    public var tls: TLSSettings
    /// `trusted_clients`: the callers that are answered; everyone else gets 403.
    public var trustedClients: [TrustedClient]
    /// `path_prefix`: removed from the listener's own request path (Envoy ext_authz HTTP), without a trailing `/`.
    public var pathPrefix: String?
    /// `grpc_listen`: Envoy ext_authz gRPC `Check` with the same `tls` and `trusted_clients`; `nil`: off.
    public var grpcListen: ListenAddress?

    /// Creates authorize settings.
    public init(
        listen: ListenAddress = ConfigKeys.Gateway.Authorize.listen.defaultValue, tls: TLSSettings, trustedClients: [TrustedClient],
        pathPrefix: String? = nil, grpcListen: ListenAddress? = nil
    ) {
        self.listen = listen
        self.tls = tls
        self.trustedClients = trustedClients
        self.pathPrefix = pathPrefix
        self.grpcListen = grpcListen
    }
}

/// One `trusted_clients` entry: a TLS client identity, or a range of peer addresses.
public enum TrustedClient: Sendable, Hashable, CustomStringConvertible {
    /// A TLS client identity as E-Key names it: `spiffe://...` (the URI SAN) or `x509:<subject CN>`.
    case identity(String)
    /// An address range: the network's bytes (4 or 16) and its prefix length.
    case network(address: [UInt8], prefixLength: Int)

    /// Parses an entry: `spiffe://...`, `x509:<CN>`, an IP address, or `address/prefix`.
    public init?(parsing text: String) {
        if text.hasPrefix("spiffe://") && text.count > "spiffe://".count || text.hasPrefix("x509:") && text.count > "x509:".count {
            self = .identity(text)
            return
        }
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.addressBytes(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefixLength = bits
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit), let length = Int(parts[1]), length <= bits else { return nil }
            prefixLength = length
        }
        self = .network(address: address, prefixLength: prefixLength)
    }

    /// Whether a caller with this TLS `identity` (if any) and peer `address` matches.
    public func admits(identity: String?, address: String?) -> Bool {
        switch self {
        case .identity(let expected):
            return identity == expected
        case .network(let network, let prefixLength):
            guard let address, var bytes = Self.addressBytes(address) else { return false }
            // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
            if network.count == 4, bytes.count == 16, bytes.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) {
                bytes = Array(bytes.suffix(4))
            }
            guard bytes.count == network.count else { return false }
            var remaining = prefixLength
            for (have, want) in zip(bytes, network) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                if have & mask != want & mask { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// Whether the entry names a TLS identity (and so needs client certificates).
    public var isIdentity: Bool {
        if case .identity = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .identity(let identity): identity
        case .network(let address, let prefixLength): "\(Self.text(of: address))/\(prefixLength)"
        }
    }

    /// The 4 or 16 bytes of a numeric IPv4 or IPv6 address; `nil` for anything else.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private static func text(of address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = address.count == 4 ? AF_INET : AF_INET6
        let written = address.withUnsafeBytes { bytes in
            inet_ntop(family, bytes.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard written else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension ListenAddress {
    /// Whether the host is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        guard let bytes = TrustedClient.addressBytes(host) else { return false }
        return bytes.count == 4 ? bytes[0] == 127 : bytes == Array(repeating: 0, count: 15) + [1]
    }
}
