/// One RESP2 reply, copied out of hiredis.
public enum RedisValue: Sendable, Hashable {
    case simpleString(String)
    case error(String)
    case integer(Int)
    case bulkString([UInt8])
    case null
    case array([RedisValue])

    /// The text of a simple or bulk string, or the decimal form of an integer.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// An integer reply, or a string reply holding a decimal integer.
    public var int: Int? {
        switch self {
        case .integer(let value): value
        case .bulkString, .simpleString: self.string.flatMap { Int($0) }
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// The message of an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}

/// A command as its argument list, e.g. `["SET", "k", "v"]`.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    public var arguments: [String]

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }

    public init(_ name: String, _ arguments: String...) {
        self.arguments = [name] + arguments
    }

    /// The command name only: arguments may hold secrets (AUTH) and are never printed.
    public var description: String { self.arguments.first ?? "" }
}
