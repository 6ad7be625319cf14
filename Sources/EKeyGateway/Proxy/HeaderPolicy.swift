import Foundation
public import HTTPTypes

/// Which headers cross the gateway (DESIGN.md §5 step 6).
///
/// Removed towards the upstream: hop-by-hop headers (RFC 9110 §7.6.1, and any header the
/// `Connection` header names), `Authorization`, `DPoP`, `Host` (the upstream's own is
/// used), `Forwarded` and `X-Forwarded-*` (replaced by the gateway's own `Forwarded`), and
/// every client-sent `X-EKey-*`, so the upstream can trust the `X-EKey-*` it sees.
public enum HeaderPolicy {
    /// Hop-by-hop headers, lower case.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "http2-settings",
    ]

    static let removedTowardsUpstream: Set<String> = ["authorization", "dpop", "host", "forwarded"]

    /// The request headers to send upstream, before the gateway's additions.
    public static func upstreamHeaders(from fields: HTTPFields) -> [(String, String)] {
        let named = connectionNamed(fields)
        return fields.compactMap { field in
            let name = field.name.canonicalName
            if hopByHop.contains(name) || named.contains(name) || removedTowardsUpstream.contains(name)
                || name.hasPrefix("x-ekey-") || name.hasPrefix("x-forwarded-")
            {
                return nil
            }
            return (field.name.rawName, field.value)
        }
    }

    /// The response headers to send downstream: hop-by-hop headers removed.
    public static func downstreamHeaders(from pairs: [(name: String, value: String)]) -> HTTPFields {
        let named = Set(pairs.filter { $0.name.lowercased() == "connection" }.flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        var fields = HTTPFields()
        for (name, value) in pairs {
            let lower = name.lowercased()
            guard !hopByHop.contains(lower), !named.contains(lower), let fieldName = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    static func connectionNamed(_ fields: HTTPFields) -> Set<String> {
        Set(fields[values: .connection].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
    }

    /// An RFC 7239 `Forwarded` element for this hop.
    public static func forwarded(clientAddress: String?, host: String?, proto: String) -> String {
        var parts: [String] = []
        if let clientAddress {
            parts.append(clientAddress.contains(":") ? "for=\"[\(clientAddress)]\"" : "for=\(clientAddress)")
        }
        if let host, !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:[]".contains($0) }) {
            parts.append("host=\"\(host)\"")
        }
        parts.append("proto=\(proto)")
        return parts.joined(separator: ";")
    }
}
