import EKeyProtocol
import Testing

struct StrictJSONParserTests {
    @Test func parsesTheJSONTypes() throws {
        let value = try StrictJSONParser().parse(
            Array(#"{"a":[1,-2,3.5,1e3,true,false,null],"b":"x\u00e9\ud83d\ude00\n","c":{}}"#.utf8))
        #expect(value["a"] == [.integer(1), .integer(-2), .double(3.5), .double(1000), true, false, nil])
        #expect(value["b"] == .string("xé😀\n"))
        #expect(value["c"] == .object([:]))
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, JSONParseError.Kind.duplicateMember),
        (#"{"a":1,"\u0061":2}"#, .duplicateMember),
        (#"{"a":1} x"#, .trailingData),
        (#"{"a":01}"#, .unexpectedCharacter),
        (#"{"a":1.}"#, .invalidNumber),
        (#"{"a":"\ud800"}"#, .invalidString),
        (#"{"a":"\x"}"#, .invalidString),
        ("{\"a\":\"\u{01}\"}", .invalidString),
        (#"{"a":1,}"#, .unexpectedCharacter),
        (#"{'a':1}"#, .unexpectedCharacter),
        (#"{"a":tru}"#, .unexpectedCharacter),
        (#"{"a":1e999}"#, .invalidNumber),
        ("{\"a\":", .unexpectedEnd),
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), .tooDeep),
    ])
    func refuses(text: String, kind: JSONParseError.Kind) {
        let error = #expect(throws: JSONParseError.self) { try StrictJSONParser().parse(Array(text.utf8)) }
        #expect(error?.kind == kind)
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]
        let error = #expect(throws: JSONParseError.self) { try StrictJSONParser().parse(bytes) }
        #expect(error?.kind == .invalidString)
    }

    @Test func hugeIntegersBecomeDoublesNotWrappedIntegers() throws {
        let value = try StrictJSONParser().parse(Array(#"{"exp":99999999999999999999}"#.utf8))
        #expect(value["exp"]?.integerValue == nil)
    }

    @Test func serialisesSortedAndCompact() {
        let value: JSONValue = ["b": 1, "a": ["x\"\\\n\u{01}", true, nil]]
        #expect(value.serialized() == #"{"a":["x\"\\\n\u0001",true,null],"b":1}"#)
    }

    /// One escaper for the wire and the logs: named escapes where JSON has them, `\u` for
    /// other control characters, DEL and the line and paragraph separators; text that needs
    /// none comes back as it was.
    @Test func stringsAreEscapedOneWayAndReadBackUnchanged() throws {
        let text = "tab\t\u{08}\u{0C}\u{7F} \u{2028}\u{2029} é ☃ \u{1F600}"
        let quoted = JSONValue.quoted(text)
        #expect(quoted == #""tab\t\b\f\u007f \u2028\u2029 é ☃ 😀""#)
        #expect(try StrictJSONParser().parse(Array(quoted.utf8)) == .string(text))
        #expect(JSONValue.quoted("plain ascii") == #""plain ascii""#)
    }
}
