/// A subject pattern of `issuer.templates[].subjects` and `delegate_subjects`
/// (docs/spec/issuer.md): `*` matches any run of characters, `/` and `:` included; every other
/// character matches itself. There is no escape: a literal `*` cannot be matched.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    private let parts: [[UInt8]]

    /// Compiles `pattern`.
    public init(_ pattern: String) {
        self.pattern = pattern
        self.parts = pattern.utf8.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false).map(Array.init)
    }

    public var description: String { pattern }

    /// Whether `text` matches the whole pattern.
    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8(matches(bytes:))
    }

    /// ``matches(_:)`` over the text's UTF-8, read in place.
    private func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard parts.count > 1 else { return bytes.elementsEqual(parts[0]) }
        let first = parts[0]
        let last = parts[parts.count - 1]
        guard bytes.count >= first.count + last.count, bytes.starts(with: first), bytes.suffix(last.count).elementsEqual(last)
        else { return false }
        var position = first.count
        let end = bytes.count - last.count
        for part in parts[1..<(parts.count - 1)] where !part.isEmpty {
            guard let found = Self.find(part, in: bytes, from: position, before: end) else { return false }
            position = found + part.count
        }
        return true
    }

    /// The first index of `needle` in `haystack[from..<before]`, leftmost (greedy-free
    /// matching is exact for `*`-only globs).
    private static func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from start: Int, before end: Int) -> Int? {
        guard end - start >= needle.count else { return nil }
        var index = start
        while index + needle.count <= end {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
