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
        var output = ""
        write(into: &output)
        return output
    }

    /// The UTF-8 bytes of ``serialized()``.
    public func serializedBytes() -> [UInt8] {
        Array(serialized().utf8)
    }

    private func write(into output: inout String) {
        switch self {
        case .null:
            output += "null"
        case .bool(let value):
            output += value ? "true" : "false"
        case .integer(let value):
            output += String(value)
        case .double(let value):
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
                output += String(Int64(value))
            } else if value.isFinite {
                output += String(describing: value)
            } else {
                output += "null"
            }
        case .string(let value):
            output += Self.quoted(value)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(into: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, name) in members.keys.sorted().enumerated() {
                if index > 0 { output += "," }
                output += Self.quoted(name)
                output += ":"
                members[name]!.write(into: &output)
            }
            output += "}"
        }
    }

    /// `text` as a JSON string literal, the one way E-Key writes strings, on the wire and in
    /// log lines: `"` and `\` escaped; `\n`, `\r`, `\t`, `\b`, `\f` by name; other control
    /// characters, DEL, U+2028 and U+2029 as `\u` escapes, so no value can end a log line,
    /// add members to it, or end a JavaScript string early.
    public static func quoted(_ text: String) -> String {
        if !text.utf8.contains(where: mayNeedEscape) {
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
        guard text.utf8.contains(where: mayNeedEscape) else {
            bytes.append(contentsOf: text.utf8)
            return
        }
        bytes.append(contentsOf: quoted(text).utf8.dropFirst().dropLast())
    }

    /// Bytes that may need an escape: control characters, `"`, `\`, DEL, and the lead byte
    /// of U+2028/U+2029 (checked precisely on the slow path).
    private static func mayNeedEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F || byte == 0xE2
    }
}
