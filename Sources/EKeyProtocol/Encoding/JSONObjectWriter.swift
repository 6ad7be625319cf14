/// Writes one JSON object member by member, for the documents the issuer writes per token
/// (the payload, the protected header, the `201` body) without building a ``JSONValue``
/// tree, a dictionary and a sorted copy of it first.
///
/// Callers add members sorted by name, so the bytes equal ``JSONValue/serializedBytes()``
/// of the same object; the tests of each writer compare the two.
public struct JSONObjectWriter {
    /// The bytes so far; complete once ``finish()`` has returned them.
    private var bytes: [UInt8]
    private var isEmpty = true

    /// Starts an object, reserving `capacity` bytes.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    private mutating func name(_ name: String) {
        if !isEmpty { bytes.append(UInt8(ascii: ",")) }
        isEmpty = false
        JSONValue.appendQuoted(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// Adds a string member.
    public mutating func string(_ name: String, _ value: String) {
        self.name(name)
        JSONValue.appendQuoted(value, to: &bytes)
    }

    /// Adds an integer member.
    public mutating func integer(_ name: String, _ value: Int64) {
        self.name(name)
        JSONValue.appendDecimal(value, to: &bytes)
    }

    /// Adds a member whose value `write` appends as JSON.
    public mutating func value(_ name: String, _ write: (inout [UInt8]) -> Void) {
        self.name(name)
        write(&bytes)
    }

    /// Closes the object and gives its bytes.
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
