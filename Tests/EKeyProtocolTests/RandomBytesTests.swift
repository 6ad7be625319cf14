import Testing

@testable import EKeyProtocol

struct RandomBytesTests {
    @Test(arguments: [0, 1, 7, 8, 9, 16, 48])
    func givesExactlyTheBytesAskedFor(count: Int) {
        #expect(RandomBytes.make(count).count == count)
        #expect(RandomBytes.hex(count).utf8.count == 2 * count)
    }

    @Test func tracesAreLowercaseHexAndNeverRepeat() {
        let traces = (0..<2000).map { _ in EKeyClaims.randomTrace() }
        #expect(traces.allSatisfy(EKeyClaims.isTrace), "32 lowercase hex digits each")
        #expect(Set(traces).count == traces.count)
    }

    /// Every byte position takes many values: a generator that filled only part of each
    /// eight-byte draw, or repeated a draw, would leave positions constant.
    @Test func everyPositionVaries() {
        let draws = (0..<256).map { _ in RandomBytes.make(16) }
        for position in 0..<16 {
            #expect(Set(draws.map { $0[position] }).count > 100, "position \(position)")
        }
        let hexDigits = Set(RandomBytes.hex(4096).utf8)
        #expect(hexDigits == Set("0123456789abcdef".utf8), "all sixteen digits appear")
    }
}
