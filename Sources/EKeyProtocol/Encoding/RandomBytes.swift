#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random bytes from the system's cryptographically secure generator, drawn in one call
/// (`arc4random_buf`: one `getrandom` for the whole draw with glibc, where the standard
/// library's generator makes one per eight bytes).
public enum RandomBytes {
    /// `count` random bytes.
    public static func make(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { arc4random_buf(buffer.baseAddress!, count) }
            initialized = count
        }
    }

    /// `count` random bytes as lowercase hexadecimal (`2 × count` characters).
    public static func hex(_ count: Int) -> String {
        let bytes = make(count)
        let digits: StaticString = "0123456789abcdef"
        return digits.withUTF8Buffer { digits in
            String(unsafeUninitializedCapacity: 2 * count) { text in
                for (index, byte) in bytes.enumerated() {
                    text[2 * index] = digits[Int(byte >> 4)]
                    text[2 * index + 1] = digits[Int(byte & 0x0F)]
                }
                return 2 * count
            }
        }
    }
}
