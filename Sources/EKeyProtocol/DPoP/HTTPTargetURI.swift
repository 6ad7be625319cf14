/// An `http`/`https` URI reduced to what RFC 9449 §4.3 compares for `htu`: scheme and host
/// case-insensitively, the port with defaults removed, and the path exactly; query and
/// fragment are dropped.
public struct HTTPTargetURI: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    public let host: String
    public let port: Int?
    public let path: String

    /// Parses an absolute `http` or `https` URI; `nil` when it is not one.
    public init?(_ text: String) {
        guard let separator = text.firstRange(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        var rest = text[separator.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            rest = rest[..<end]
        }
        let authority: Substring
        let path: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[slash...]
        } else {
            authority = rest
            path = "/"
        }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Self.portNumber(after.dropFirst()) else { return nil }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            let portText = authority[authority.index(after: colon)...]
            if !portText.isEmpty {
                guard let value = Self.portNumber(portText) else { return nil }
                port = value
            }
        }
        guard !host.isEmpty, port.map({ (1...65535).contains($0) }) ?? true else { return nil }
        if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) {
            port = nil
        }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        self.path = String(path)
    }

    /// A port written as 1-5 decimal digits without a leading zero (`+443`, `0443` and
    /// `44_3` are refused rather than read as 443).
    private static func portNumber(_ text: Substring) -> Int? {
        guard (1...5).contains(text.utf8.count), text.utf8.first != UInt8(ascii: "0"),
            text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int(text)
    }

    public var description: String {
        "\(scheme)://\(host)\(port.map { ":\($0)" } ?? "")\(path)"
    }
}
