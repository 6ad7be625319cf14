import EKeyProtocol
public import HTTPTypes

/// Step 0, with the path check: the request's own framing must be unambiguous (RFC 9112
/// §6.1, §6.3), so that the body the gateway reads is the body the client meant and can
/// never carry a second request.
///
/// Refused with 400 `invalid_request`: `Content-Length` together with
/// `Transfer-Encoding`, `Content-Length` values that differ or are not decimal digits,
/// and any transfer coding but `chunked` alone (`gzip, chunked`, `chunked, chunked`,
/// `identity`). SwiftNIO's HTTP/1.1 decoder refuses most of these before the gateway sees
/// them; this check holds whichever decoder ran, and HTTP/2 requests pass through it too.
public enum RequestFraming {
    /// Refuses a request whose framing headers are ambiguous.
    ///
    /// - Parameters:
    ///   - contentLength: every `Content-Length` field value of the request.
    ///   - transferEncoding: every `Transfer-Encoding` field value of the request.
    public static func check(contentLength: [String], transferEncoding: [String]) throws(Rejection) {
        if contentLength.isEmpty, transferEncoding.isEmpty { return }
        if !contentLength.isEmpty, !transferEncoding.isEmpty {
            throw refused("the request has both Content-Length and Transfer-Encoding; send one of them")
        }
        if !transferEncoding.isEmpty {
            let codings = transferEncoding.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            guard codings.count == 1, let only = codings.first, trimmed(only).lowercased() == "chunked" else {
                throw refused("the request's Transfer-Encoding must be exactly 'chunked' (no other or repeated coding)")
            }
            return
        }
        guard lengthValue(contentLength) != nil else {
            throw refused("the request's Content-Length values differ or are not a decimal number; send one Content-Length")
        }
    }

    /// The declared `Content-Length` of a request that passed ``check(contentLength:transferEncoding:)``.
    public static func declaredLength(_ headers: HTTPFields) -> Int64? {
        let values = headers[values: .contentLength]
        return values.isEmpty ? nil : lengthValue(values)
    }

    /// The one length every element of `values` (comma lists included) states, or `nil`.
    static func lengthValue(_ values: [String]) -> Int64? {
        var length: Int64?
        for value in values {
            for element in value.split(separator: ",", omittingEmptySubsequences: false) {
                let digits = trimmed(element)
                guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                    let parsed = Int64(digits), length == nil || length == parsed
                else { return nil }
                length = parsed
            }
        }
        return length
    }

    /// `text` without the spaces and tabs around it.
    private static func trimmed(_ text: Substring) -> Substring {
        let isBlank = { (character: Character) in character == " " || character == "\t" }
        guard let first = text.firstIndex(where: { !isBlank($0) }), let last = text.lastIndex(where: { !isBlank($0) }) else { return "" }
        return text[first...last]
    }

    private static func refused(_ reason: String) -> Rejection {
        Rejection(EKeyError(.invalidRequest, reason), scheme: nil, outcome: .invalidRequest)
    }
}
