public import HTTPTypes

/// Which headers cross the gateway (docs/spec/gateway.md step 6).
///
/// Removed towards the upstream: hop-by-hop headers (RFC 9110 §7.6.1, and any header the
/// `Connection` header names), the framing headers `Content-Length` and
/// `Transfer-Encoding` (the gateway writes its own framing for every body it sends),
/// `Authorization`, `DPoP`, `Host` (the upstream's own is used), `Forwarded` and
/// `X-Forwarded-*` (replaced by the gateway's own `Forwarded`), method and URL overrides
/// (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`, `X-Original-URL`,
/// `X-Rewrite-URL`: frameworks that honour them would run another method or path than
/// the one verified), and every client-sent `X-EKey-*`, so the upstream can trust the
/// `X-EKey-*` it sees.
///
/// Names are compared case-insensitively with `_` and `-` alike: CGI and WSGI stacks map
/// both to the same variable, so `X_EKey_Sub` would reach the application as `X-EKey-Sub`.
/// Whatever `Connection` names, the headers the gateway writes itself are its own.
public enum HeaderPolicy {
    /// Hop-by-hop headers, lower case.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "http2-settings",
    ]

    /// Dropped towards the upstream whatever their spelling (lower case, `-` for `_`).
    static let removedTowardsUpstream: Set<String> = [
        "authorization", "dpop", "host", "forwarded", "content-length",
        "x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url",
    ]

    /// The request headers to send upstream, before the gateway's additions.
    public static func upstreamHeaders(from fields: HTTPFields) -> [(String, String)] {
        let named = connectionNamed(fields)
        var kept: [(String, String)] = []
        kept.reserveCapacity(fields.count)
        for field in fields {
            let key = aliasKey(field.name.canonicalName)
            if hopByHop.contains(key) || removedTowardsUpstream.contains(key) || key.hasPrefix("x-ekey-") || key.hasPrefix("x-forwarded-")
                || (!named.isEmpty && named.contains(key))
            {
                continue
            }
            kept.append((field.name.rawName, field.value))
        }
        return kept
    }

    /// A lower-case field name with `_` read as `-`, the way CGI-style servers read it.
    static func aliasKey(_ lowercased: String) -> String {
        guard lowercased.utf8.contains(UInt8(ascii: "_")) else { return lowercased }
        return String(decoding: lowercased.utf8.map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }

    /// The response headers to send downstream: hop-by-hop headers and those the
    /// `Connection` header names removed, and names that are not valid field names dropped.
    public static func downstreamHeaders(from pairs: [(name: String, value: String)]) -> HTTPFields {
        var named: Set<String> = []
        for (name, value) in pairs where name.utf8.count == 10 && name.lowercased() == "connection" {
            for option in value.split(separator: ",") {
                named.insert(trimmedLowercased(option))
            }
        }
        // A hop-by-hop header anyway; without it, the usual `Connection: keep-alive` names nothing.
        named.remove("keep-alive")
        var fields = HTTPFields()
        fields.reserveCapacity(pairs.count)
        for (name, value) in pairs {
            guard let fieldName = HTTPField.Name(name) else { continue }
            let canonical = fieldName.canonicalName
            guard !hopByHop.contains(canonical), named.isEmpty || !named.contains(canonical) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    /// The options of the request's `Connection` headers, as alias keys.
    static func connectionNamed(_ fields: HTTPFields) -> Set<String> {
        Set(fields[values: .connection].flatMap { $0.split(separator: ",") }.map { aliasKey(trimmedLowercased($0)) })
    }

    /// A `Connection` option without the spaces and tabs around it, in lower case.
    private static func trimmedLowercased(_ option: Substring) -> String {
        let isBlank = { (character: Character) in character == " " || character == "\t" }
        return String(option.drop(while: isBlank).reversed().drop(while: isBlank).reversed()).lowercased()
    }

    /// An RFC 7239 `Forwarded` element for this hop.
    public static func forwarded(clientAddress: String?, host: String?, proto: String) -> String {
        var parts: [String] = []
        if let clientAddress {
            parts.append(clientAddress.contains(":") ? "for=\"[\(clientAddress)]\"" : "for=\(clientAddress)")
        }
        if let host, !host.isEmpty, host.utf8.allSatisfy(isHostByte) {
            parts.append("host=\"\(host)\"")
        }
        parts.append("proto=\(proto)")
        return parts.joined(separator: ";")
    }

    /// ASCII letters, digits and `.-:[]`: a host (name, IPv4, bracketed IPv6) and port that
    /// can go in a quoted `Forwarded` value as is.
    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"): true
        default: false
        }
    }
}
