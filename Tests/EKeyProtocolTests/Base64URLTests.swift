import EKeyProtocol
import Testing

struct Base64URLTests {
    @Test(arguments: [
        ([], ""), ([0x66], "Zg"), ([0x66, 0x6F], "Zm8"), ([0x66, 0x6F, 0x6F], "Zm9v"),
        ([0xFB, 0xFF, 0xBF], "-_-_"), ([0x00, 0x00, 0x00, 0x00], "AAAAAA"),
    ] as [([UInt8], String)])
    func roundTrips(bytes: [UInt8], text: String) throws {
        #expect(Base64URL.encode(bytes) == text)
        #expect(try Base64URL.decode(text) == bytes)
    }

    @Test(arguments: [
        ("Zg==", Base64URLError.padding), ("Zm8=", .padding), ("Zm+v", .invalidCharacter), ("Zm/v", .invalidCharacter),
        ("Zm v", .invalidCharacter), ("Zm9v\n", .invalidLength), ("Z", .invalidLength), ("Zh", .nonCanonicalTrailingBits),
        ("Zm9", .nonCanonicalTrailingBits), ("Zm\u{00E9}", .invalidCharacter),
    ])
    func refusesNonStrictInput(text: String, expected: Base64URLError) {
        let error = #expect(throws: Base64URLError.self) { try Base64URL.decode(text) }
        #expect(error == expected)
    }

    @Test func everyByteValueRoundTrips() throws {
        let bytes = (0...255).map { UInt8($0) }
        for length in 0..<bytes.count {
            let slice = Array(bytes[..<length])
            #expect(try Base64URL.decode(Base64URL.encode(slice)) == slice)
        }
    }
}
