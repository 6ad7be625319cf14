/// How a request's body was delimited on the wire, as the recording upstream saw it.
enum UpstreamFraming: Sendable, Equatable, CustomStringConvertible {
    /// No `Content-Length` and no `Transfer-Encoding`: no body (RFC 9112 §6.3 rule 7).
    case none
    /// One `Content-Length` field with this value.
    case contentLength(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked
    /// An HTTP/2 stream: the body is its DATA frames.
    case http2

    var description: String {
        switch self {
        case .none: "none"
        case .contentLength(let length): "content-length \(length)"
        case .chunked: "chunked"
        case .http2: "h2 DATA"
        }
    }
}

/// A strict HTTP/1.1 request parser written for the tests, independent of SwiftNIO's
/// decoder: it reads what a legacy upstream behind the gateway would read, and fails on
/// anything RFC 9112 lets a recipient reject, instead of guessing.
///
/// Refused: a line ending other than CRLF (bare LF, bare CR), an empty line before the
/// request line, a request line that is not `method SP target SP HTTP/1.x`, a field name
/// that is not a token (whitespace before the colon included), obs-fold, a control byte
/// (NUL, CR, DEL, …) in a field value, both `Content-Length` and `Transfer-Encoding`, more
/// than one `Content-Length` value, a `Content-Length` that is not one decimal number, a
/// transfer coding other than `chunked` alone, and malformed chunks.
/// Framing follows RFC 9112 §6.3: chunked, else `Content-Length`, else no body.
enum StrictHTTP1Parser {
    /// One parsed request.
    struct Request: Sendable {
        var method: String
        var target: String
        var version: String
        /// The fields in order, names as sent; values without surrounding whitespace, bytes as Latin-1.
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        var framing: UpstreamFraming
        /// The trailer fields of a chunked body.
        var trailers: [(name: String, value: String)]
    }

    /// Why the bytes are not a valid HTTP/1.1 request.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The longest head (request line and fields) accepted.
    static let maximumHeadLength = 65_536
    /// The largest body accepted.
    static let maximumBodyLength = 16 << 20

    /// Parses the request at the start of `bytes`: the request and the bytes it took, or
    /// `nil` when `bytes` holds only the beginning of one.
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Failure) -> (request: Request, consumed: Int)? {
        var reader = LineReader(bytes: bytes, position: bytes.startIndex)
        guard let requestLine = try reader.line(limit: maximumHeadLength) else { return nil }
        if requestLine.isEmpty {
            throw Failure(description: "an empty line where the request line belongs")
        }
        let (method, target, version) = try parseRequestLine(requestLine)
        guard let headers = try reader.fields(limit: maximumHeadLength) else { return nil }
        let framing = try framing(of: headers)
        var body: [UInt8] = []
        var trailers: [(name: String, value: String)] = []
        switch framing {
        case .none, .http2:
            break
        case .contentLength(let length):
            guard reader.remaining >= length else { return nil }
            body = Array(reader.take(length))
        case .chunked:
            guard let (chunks, fields) = try reader.chunkedBody() else { return nil }
            body = chunks
            trailers = fields
        }
        let request = Request(method: method, target: target, version: version, headers: headers, body: body, framing: framing, trailers: trailers)
        return (request, reader.position - bytes.startIndex)
    }

    static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(Failure) -> (String, String, String) {
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw Failure(description: "request line \(quoted(line)) is not 'method SP target SP version'")
        }
        guard !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte) else {
            throw Failure(description: "method \(quoted(parts[0])) is not a token")
        }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw Failure(description: "request target \(quoted(parts[1])) holds a byte outside visible ASCII")
        }
        let version = latin1(parts[2])
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw Failure(description: "version \(quoted(parts[2])) is not HTTP/1.1 or HTTP/1.0")
        }
        return (latin1(parts[0]), latin1(parts[1]), version)
    }

    /// The body's framing per RFC 9112 §6.3, refusing every ambiguous case.
    static func framing(of headers: [(name: String, value: String)]) throws(Failure) -> UpstreamFraming {
        let codings = headers.filter { $0.name.lowercased() == "transfer-encoding" }.map(\.value)
        let lengths = headers.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        if !codings.isEmpty {
            guard lengths.isEmpty else {
                throw Failure(description: "both Content-Length (\(lengths)) and Transfer-Encoding (\(codings))")
            }
            let list = codings.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingBlanks().lowercased() }
            guard list == ["chunked"] else {
                throw Failure(description: "Transfer-Encoding \(codings) is not 'chunked' alone")
            }
            return .chunked
        }
        guard let first = lengths.first else { return .none }
        guard lengths.count == 1 else {
            throw Failure(description: "\(lengths.count) Content-Length fields: \(lengths)")
        }
        guard !first.isEmpty, first.utf8.count <= 9, first.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let length = Int(first), length <= maximumBodyLength
        else {
            throw Failure(description: "Content-Length \"\(first)\" is not one decimal number within \(maximumBodyLength)")
        }
        return .contentLength(length)
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    /// RFC 9110 §5.5 `field-vchar`, SP and HTAB.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || byte == 0x20 || (byte > 0x20 && byte != 0x7F)
    }

    static func latin1<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
        return String(scalars)
    }

    /// The first `limit` bytes for a message, with control bytes escaped.
    static func quoted<Bytes: Sequence<UInt8>>(_ bytes: Bytes, limit: Int = 160) -> String {
        "\"" + bytes.prefix(limit).map { byte in
            switch byte {
            case 0x0D: "\\r"
            case 0x0A: "\\n"
            case 0x09: "\\t"
            case 0x20...0x7E where byte != UInt8(ascii: "\""): String(UnicodeScalar(byte))
            default: "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }.joined() + "\""
    }

    /// Reads CRLF-terminated lines, fields and chunks from a byte slice.
    struct LineReader {
        let bytes: ArraySlice<UInt8>
        var position: Int

        var remaining: Int { bytes.endIndex - position }

        mutating func take(_ count: Int) -> ArraySlice<UInt8> {
            defer { position += count }
            return bytes[position..<position + count]
        }

        /// The next line without its CRLF; `nil` when its end has not arrived.
        mutating func line(limit: Int) throws(Failure) -> ArraySlice<UInt8>? {
            guard let lineFeed = bytes[position...].firstIndex(of: 0x0A) else {
                if remaining > limit { throw Failure(description: "no line end within \(limit) bytes") }
                if let carriageReturn = bytes[position...].firstIndex(of: 0x0D), carriageReturn + 1 < bytes.endIndex {
                    throw Failure(description: "a bare CR in \(quoted(bytes[position..<min(bytes.endIndex, position + 80)]))")
                }
                return nil
            }
            guard lineFeed > position, bytes[lineFeed - 1] == 0x0D else {
                throw Failure(description: "a bare LF ending \(quoted(bytes[position..<lineFeed]))")
            }
            let content = bytes[position..<(lineFeed - 1)]
            if content.contains(0x0D) {
                throw Failure(description: "a bare CR in \(quoted(content))")
            }
            position = lineFeed + 1
            return content
        }

        /// Field lines up to the empty line; `nil` when the empty line has not arrived.
        mutating func fields(limit: Int) throws(Failure) -> [(name: String, value: String)]? {
            var fields: [(name: String, value: String)] = []
            while true {
                guard let line = try line(limit: limit) else { return nil }
                if line.isEmpty { return fields }
                if line.first == 0x20 || line.first == 0x09 {
                    throw Failure(description: "obs-fold (a line starting with whitespace): \(quoted(line))")
                }
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                    throw Failure(description: "a field line without a colon: \(quoted(line))")
                }
                let name = line[..<colon]
                guard !name.isEmpty, name.allSatisfy(StrictHTTP1Parser.isTokenByte) else {
                    throw Failure(description: "field name \(quoted(name)) is not a token")
                }
                var value = line[(colon + 1)...]
                while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
                while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
                guard value.allSatisfy(StrictHTTP1Parser.isFieldValueByte) else {
                    throw Failure(description: "a control byte in the value of \(quoted(name)): \(quoted(value))")
                }
                fields.append((StrictHTTP1Parser.latin1(name), StrictHTTP1Parser.latin1(value)))
            }
        }

        /// A chunked body and its trailers (RFC 9112 §7.1); `nil` when its end has not arrived.
        mutating func chunkedBody() throws(Failure) -> ([UInt8], [(name: String, value: String)])? {
            var body: [UInt8] = []
            while true {
                guard let sizeLine = try line(limit: 1024) else { return nil }
                let sizeEnd = sizeLine.firstIndex(of: UInt8(ascii: ";")) ?? sizeLine.endIndex
                let digits = sizeLine[..<sizeEnd]
                guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy({ StrictHTTP1Parser.hexValue($0) != nil }) else {
                    throw Failure(description: "chunk size line \(quoted(sizeLine)) is not hexadecimal")
                }
                guard sizeLine[sizeEnd...].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw Failure(description: "chunk extension in \(quoted(sizeLine)) holds whitespace or control bytes")
                }
                let size = digits.reduce(0) { $0 << 4 | Int(StrictHTTP1Parser.hexValue($1)!) }
                if size == 0 {
                    guard let trailers = try fields(limit: StrictHTTP1Parser.maximumHeadLength) else { return nil }
                    return (body, trailers)
                }
                guard body.count + size <= StrictHTTP1Parser.maximumBodyLength else {
                    throw Failure(description: "a chunked body over \(StrictHTTP1Parser.maximumBodyLength) bytes")
                }
                guard remaining >= size + 2 else { return nil }
                body += take(size)
                guard take(2).elementsEqual([0x0D, 0x0A]) else {
                    throw Failure(description: "chunk data of \(size) bytes not followed by CRLF")
                }
            }
        }
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingBlanks() -> String {
        let isBlank = { (character: Character) in character == " " || character == "\t" }
        return String(drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }

    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}
