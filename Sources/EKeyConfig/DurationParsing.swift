extension Duration {
    /// Parses a configuration duration: `500ms`, `5s`, `2m`, `24h`, compounds such as `1h30m`
    /// (largest unit first, each unit once), or a bare whole number of seconds (`30`).
    ///
    /// Returns `nil` for anything else, including negative values and fractions.
    public init?(configText text: String) {
        let text = text.trimmingWhitespace()
        guard !text.isEmpty, text.count <= 64 else { return nil }
        if text.allSatisfy(\.isASCIIDigit) {
            guard let seconds = Int64(text) else { return nil }
            self = .seconds(seconds)
            return
        }
        let units: [(name: String, milliseconds: Int64)] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
        var rest = Substring(text)
        var total: Int64 = 0
        var nextUnit = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCIIDigit)
            guard !digits.isEmpty, let amount = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { $0.isLetter })
            rest = rest.dropFirst(unitText.count)
            guard let unit = units.indices.first(where: { units[$0].name == unitText }), unit >= nextUnit else {
                return nil
            }
            nextUnit = unit + 1
            let (product, overflow) = amount.multipliedReportingOverflow(by: units[unit].milliseconds)
            guard !overflow else { return nil }
            let (sum, overflowSum) = total.addingReportingOverflow(product)
            guard !overflowSum else { return nil }
            total = sum
        }
        self = .milliseconds(total)
    }

    /// The duration written the way the configuration accepts it (`1h30m`, `500ms`, `0s`).
    public var configText: String {
        var milliseconds = components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        var parts = ""
        for (name, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1_000), ("ms", 1)] where milliseconds >= size {
            parts += "\(milliseconds / size)\(name)"
            milliseconds %= size
        }
        return parts
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isWholeNumber }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
