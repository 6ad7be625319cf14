/// A request target whose path passed E-Key's path check (docs/spec/token.md, gateway step 0).
///
/// The check refuses, rather than normalises: dot segments (`.`, `..`, also with a `;`
/// parameter such as `..;`), segments empty before a `;` parameter (`/a/;`, `/a/;x/b`:
/// servlet containers strip parameters and would serve `/a/` or `/a/b`), encoded dots,
/// slashes and backslashes (`%2e`, `%2F`, `%5C`), `%00`, any other percent-encoded
/// unreserved character (`%61`, `%7E`: an upstream decodes them into another path than
/// the one matched), empty segments (`//`; a single trailing `/` is kept and significant),
/// invalid percent-encoding, and bytes outside RFC 3986 `pchar`. The path is kept exactly
/// as sent.
public struct RequestTarget: Sendable, Hashable {
    /// The path as the client sent it, without the query.
    public let path: String
    /// The query without `?`, if any.
    public let query: String?
    /// The path's segments after the leading `/` (a trailing `/` gives a final empty segment).
    public let segments: [Substring]

    /// Validates a request target in origin form (`/path?query`).
    ///
    /// - Throws: ``EKeyError`` `invalid_request` (400) naming the defect.
    public init(validating target: String) throws(EKeyError) {
        let bytes = Array(target.utf8)
        guard bytes.first == UInt8(ascii: "/") else {
            throw Self.rejected("the request path must start with '/'")
        }
        let pathEnd = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        let pathBytes = bytes[..<pathEnd]
        var index = pathBytes.startIndex
        while index < pathBytes.endIndex {
            let byte = pathBytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < pathBytes.endIndex,
                    let high = Self.hexValue(pathBytes[index + 1]), let low = Self.hexValue(pathBytes[index + 2])
                else { throw Self.rejected("the request path has invalid percent-encoding") }
                switch high << 4 | low {
                case 0x2E: throw Self.rejected("the request path has an encoded dot (%2E)")
                case 0x2F: throw Self.rejected("the request path has an encoded slash (%2F)")
                case 0x5C: throw Self.rejected("the request path has an encoded backslash (%5C)")
                case 0x00: throw Self.rejected("the request path has an encoded NUL (%00)")
                case let decoded where Self.isUnreserved(decoded):
                    throw Self.rejected("the request path percent-encodes the unreserved character '\(Character(Unicode.Scalar(decoded)))'")
                default: break
                }
                index += 3
                continue
            }
            guard Self.isPathCharacter(byte) else {
                throw Self.rejected("the request path holds a character outside RFC 3986 pchar")
            }
            index += 1
        }
        if pathEnd < bytes.count {
            let queryBytes = bytes[(pathEnd + 1)...]
            guard queryBytes.allSatisfy({ Self.isPathCharacter($0) || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") })
            else { throw Self.rejected("the request query holds a character outside RFC 3986") }
            query = String(decoding: queryBytes, as: UTF8.self)
        } else {
            query = nil
        }
        let path = String(decoding: pathBytes, as: UTF8.self)
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (position, segment) in segments.enumerated() {
            if segment.isEmpty, position != segments.count - 1 {
                throw Self.rejected("the request path has an empty segment ('//')")
            }
            // The segment's name: what comes before its first ';' parameter, if any.
            let name = segment.firstIndex(of: ";").map { segment[..<$0] } ?? segment
            if name == "." || name == ".." {
                throw Self.rejected("the request path has a dot segment ('.' or '..')")
            }
            if name.isEmpty, segment.first == ";" {
                throw Self.rejected("the request path has a segment empty before its ';' parameter")
            }
        }
        self.path = path
        self.segments = segments
    }

    private static func rejected(_ reason: String) -> EKeyError {
        EKeyError(.invalidRequest, reason + "; send the canonical path")
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// RFC 3986 `unreserved`: letters, digits and `-._~`.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// RFC 3986 `pchar` without `%` (checked apart), plus `/`.
    static func isPathCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"):
            true
        default:
            false
        }
    }
}
