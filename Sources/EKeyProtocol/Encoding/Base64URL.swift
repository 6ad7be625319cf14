/// Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).
///
/// Decoding refuses padding, any character outside the URL-safe alphabet, a length that
/// cannot come from whole bytes, and non-canonical trailing bits, so every byte string has
/// exactly one accepted encoding.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() {
            table[Int(character)] = UInt8(index)
        }
        return table
    }()

    /// Encodes bytes as base64url without padding.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var output = [UInt8]()
        encode(bytes, appendingTo: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the base64url encoding of `bytes`, without padding, to `output`.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes, appendingTo output: inout [UInt8]) where Bytes.Element == UInt8 {
        let input = Array(bytes)
        output.reserveCapacity(output.count + (input.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= input.count {
            let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            output.append(alphabet[Int(chunk >> 18 & 0x3F)])
            output.append(alphabet[Int(chunk >> 12 & 0x3F)])
            output.append(alphabet[Int(chunk >> 6 & 0x3F)])
            output.append(alphabet[Int(chunk & 0x3F)])
            index += 3
        }
        switch input.count - index {
        case 1:
            let chunk = UInt32(input[index]) << 16
            output.append(alphabet[Int(chunk >> 18 & 0x3F)])
            output.append(alphabet[Int(chunk >> 12 & 0x3F)])
        case 2:
            let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
            output.append(alphabet[Int(chunk >> 18 & 0x3F)])
            output.append(alphabet[Int(chunk >> 12 & 0x3F)])
            output.append(alphabet[Int(chunk >> 6 & 0x3F)])
        default:
            break
        }
    }

    /// Decodes strict base64url text.
    ///
    /// - Throws: ``Base64URLError`` naming the first defect.
    public static func decode<Text: StringProtocol>(_ text: Text) throws(Base64URLError) -> [UInt8] {
        try decode(utf8: Array(text.utf8))
    }

    /// Decodes strict base64url from its UTF-8 bytes.
    public static func decode<Bytes: Collection>(utf8 text: Bytes) throws(Base64URLError) -> [UInt8]
    where Bytes.Element == UInt8 {
        let count = text.count
        if count % 4 == 1 { throw .invalidLength }
        var output = [UInt8]()
        output.reserveCapacity(count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in text {
            if character == UInt8(ascii: "=") { throw .padding }
            let value = decodeTable[Int(character)]
            if value == 0xFF { throw .invalidCharacter }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        if accumulator != 0 { throw .nonCanonicalTrailingBits }
        return output
    }
}

/// Why a base64url string was refused.
public enum Base64URLError: Error, Sendable, Equatable, CustomStringConvertible {
    case padding
    case invalidCharacter
    case invalidLength
    case nonCanonicalTrailingBits

    public var description: String {
        switch self {
        case .padding: "base64url must not carry '=' padding"
        case .invalidCharacter: "base64url holds a character outside A-Z a-z 0-9 - _"
        case .invalidLength: "base64url length cannot encode whole bytes"
        case .nonCanonicalTrailingBits: "base64url has non-zero trailing bits (not the canonical encoding)"
        }
    }
}
