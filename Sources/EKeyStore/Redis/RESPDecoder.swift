internal import CHiredis
public import NIOCore

/// Owns a hiredis `redisReader`; freed with the last decoder copy that uses it.
final class HiredisReader {
    let pointer: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else {
            fatalError("hiredis could not allocate a reader (out of memory)")
        }
        self.pointer = reader
    }

    deinit {
        redisReaderFree(self.pointer)
    }
}

@available(*, unavailable)
extension HiredisReader: Sendable {}

/// The reader reported malformed RESP; the connection must be dropped.
public struct RESPProtocolError: Error, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { "RESP protocol error: \(self.message)" }
}

/// Decodes RESP2 replies with the hiredis reader.
///
/// Bytes are fed to hiredis once each, but they leave NIO's buffer only when hiredis has
/// completed a reply with them: `fed` counts the readable bytes already handed to hiredis,
/// and after a reply the bytes hiredis still holds unparsed tell how far the reply went.
/// So the buffer is empty exactly when no complete reply is waiting inside hiredis, which
/// is what `ByteToMessageHandler` relies on to stop calling `decode`.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RedisValue

    private let reader = HiredisReader()
    /// Readable bytes at the front of the buffer already fed to hiredis.
    private var fed = 0

    public init() {}

    public mutating func decode(buffer: inout ByteBuffer) throws -> RedisValue? {
        let readable = buffer.readableBytes
        if readable > self.fed {
            let status = buffer.withUnsafeReadableBytes { bytes in
                let fresh = UnsafeRawBufferPointer(rebasing: bytes[self.fed...])
                return redisReaderFeed(self.reader.pointer, fresh.baseAddress?.assumingMemoryBound(to: CChar.self), fresh.count)
            }
            guard status == REDIS_OK else { throw self.readerError() }
            self.fed = readable
        }
        var replyPointer: UnsafeMutableRawPointer? = nil
        guard redisReaderGetReply(self.reader.pointer, &replyPointer) == REDIS_OK else {
            throw self.readerError()
        }
        guard let replyPointer else { return nil }
        defer { freeReplyObject(replyPointer) }
        let unparsed = ekey_redis_reader_unparsed(self.reader.pointer)
        buffer.moveReaderIndex(forwardBy: self.fed - unparsed)
        self.fed = unparsed
        return RedisValue(reply: replyPointer.assumingMemoryBound(to: redisReply.self))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RedisValue? {
        try self.decode(buffer: &buffer)
    }

    private func readerError() -> RESPProtocolError {
        RESPProtocolError(message: String(cString: ekey_redis_reader_error(self.reader.pointer)))
    }
}

extension RedisValue {
    /// Copies a hiredis reply tree into Swift values.
    init(reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .bulkString(Self.bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            self = .simpleString(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int(r.integer))
        case REDIS_REPLY_ARRAY:
            var values: [RedisValue] = []
            values.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] {
                    values.append(RedisValue(reply: element))
                } else {
                    values.append(.null)
                }
            }
            self = .array(values)
        default:
            self = .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
