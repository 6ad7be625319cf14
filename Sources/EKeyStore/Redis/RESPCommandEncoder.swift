internal import CHiredis
public import NIOCore

/// Encodes a `RedisCommand` as a RESP multi-bulk request with `redisFormatCommandArgv`.
public struct RESPCommandEncoder: MessageToByteEncoder {
    public typealias OutboundIn = RedisCommand

    public init() {}

    public func encode(data: RedisCommand, out: inout ByteBuffer) throws {
        try Self.encode(data, into: &out)
    }

    /// Appends the RESP bytes of `command` to `out`.
    public static func encode(_ command: RedisCommand, into out: inout ByteBuffer) throws {
        // One contiguous copy of all arguments, so a single pointer base serves every argv entry.
        var storage: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(command.arguments.count)
        for argument in command.arguments {
            let before = storage.count
            storage.append(contentsOf: argument.utf8)
            lengths.append(storage.count - before)
        }
        storage.append(0)  // never an empty array: the base address is always valid
        let written: Bool = storage.withUnsafeBufferPointer { base in
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(lengths.count)
            var offset = 0
            for length in lengths {
                argv.append(UnsafeRawPointer(base.baseAddress! + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            var target: UnsafeMutablePointer<CChar>? = nil
            let count = argv.withUnsafeMutableBufferPointer { argvPointer in
                lengths.withUnsafeBufferPointer { lengthPointer in
                    redisFormatCommandArgv(&target, Int32(lengthPointer.count), argvPointer.baseAddress, lengthPointer.baseAddress)
                }
            }
            guard count >= 0, let target else { return false }
            defer { redisFreeCommand(target) }
            out.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(count)))
            return true
        }
        guard written else { throw RESPProtocolError(message: "hiredis could not format the command") }
    }
}
