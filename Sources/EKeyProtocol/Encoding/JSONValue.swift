/// A JSON value as read by ``StrictJSONParser`` and written by ``JSONValue/serialized()``.
///
/// Integers that fit in `Int64` stay exact (`integer`); every other number is `double`.
/// Objects are unordered; serialisation sorts members by name, which gives the canonical
/// form RFC 7638 thumbprints need.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The string, when this value is one.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, when this value is a JSON number without fraction or exponent that fits in `Int64`.
    public var integerValue: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The members, when this value is an object.
    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The elements, when this value is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// Looks a member up when this value is an object.
    public subscript(member: String) -> JSONValue? {
        objectValue?[member]
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// Compact JSON with members sorted by name and no insignificant whitespace.
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    /// The UTF-8 bytes of ``serialized()``.
    public func serializedBytes() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(into: &output)
        return output
    }

    /// Appends ``serializedBytes()`` to `output`.
    public func write(into output: inout [UInt8]) {
        switch self {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .bool(let value):
            output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value):
            Self.appendDecimal(value, to: &output)
        case .double(let value):
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
                Self.appendDecimal(Int64(value), to: &output)
            } else if value.isFinite {
                output.append(contentsOf: String(describing: value).utf8)
            } else {
                output.append(contentsOf: "null".utf8)
            }
        case .string(let value):
            Self.appendQuoted(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.appendQuoted(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                member.value.write(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `value` in decimal, without making a string.
    static func appendDecimal(_ value: Int64, to output: inout [UInt8]) {
        if value < 0 { output.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = output.count
        repeat {
            output.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        output[start...].reverse()
    }

    /// `text` as a JSON string literal, the one way E-Key writes strings, on the wire and in
    /// log lines: `"` and `\` escaped; `\n`, `\r`, `\t`, `\b`, `\f` by name; other control
    /// characters, DEL, U+2028 and U+2029 as `\u` escapes, so no value can end a log line,
    /// add members to it, or end a JavaScript string early.
    public static func quoted(_ text: String) -> String {
        if !mayNeedEscape(text) {
            return "\"" + text + "\""
        }
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x2028...0x2029).contains(scalar.value) {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }

    /// Appends ``quoted(_:)`` of `text` to `bytes`.
    public static func appendQuoted(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        appendEscaped(text, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends what ``quoted(_:)`` puts between the quotes: `text` as is when nothing in it
    /// needs an escape (no string is made), else escaped.
    public static func appendEscaped(_ text: String, to bytes: inout [UInt8]) {
        guard mayNeedEscape(text) else {
            bytes.append(contentsOf: text.utf8)
            return
        }
        bytes.append(contentsOf: quoted(text).utf8.dropFirst().dropLast())
    }

    /// Whether `text` has a byte that may need an escape: a control character, `"`, `\`,
    /// DEL, or the lead byte of U+2028/U+2029 (checked precisely on the slow path). Native
    /// strings are scanned in their own storage, a byte at a time without a closure call.
    private static func mayNeedEscape(_ text: String) -> Bool {
        if let found = text.utf8.withContiguousStorageIfAvailable({ bytes in bytes.contains(where: mayNeedEscape) }) {
            return found
        }
        return text.utf8.contains(where: mayNeedEscape)
    }

    /// One byte of the scan above.
    @inline(__always)
    private static func mayNeedEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F || byte == 0xE2
    }
}
