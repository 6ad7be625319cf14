import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import EKeyStore

/// ``RedisCommandHandler`` on an `EmbeddedChannel`, the server's replies written by hand:
/// commands encoded as RESP and flushed once per loop tick, replies matched to commands in
/// order, and every way the connection ends failing what still waits.
struct RedisCommandHandlerTests {
    static func connection(commandTimeout: TimeAmount = .seconds(5)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: RedisCommandHandler(commandTimeout: commandTimeout, urlDescription: "redis://test:6379"))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    /// Sends `command`; its reply or failure lands in the returned box.
    static func send(_ command: RedisCommand, on channel: EmbeddedChannel) -> Reply {
        let reply = Reply()
        let promise = channel.eventLoop.makePromise(of: RedisValue.self)
        promise.futureResult.assumeIsolated().whenComplete { reply.result = $0 }
        channel.write(RedisRequest(command: command, promise: promise), promise: nil)
        return reply
    }

    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func commandsOfOneTickShareAFlushAndRepliesCompleteThemInOrder() throws {
        let channel = try Self.connection()
        let first = Self.send(RedisCommand("GET", "a"), on: channel)
        let second = Self.send(RedisCommand("PING"), on: channel)
        #expect(try Self.written(channel) == "", "not flushed until the loop runs")
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n")

        try channel.writeInbound(RedisValue.bulkString(Array("one".utf8)))
        #expect(try first.result?.get() == .bulkString(Array("one".utf8)))
        #expect(second.result == nil)
        try channel.writeInbound(RedisValue.simpleString("PONG"))
        #expect(try second.result?.get() == .simpleString("PONG"))
        #expect(channel.isActive)
    }

    @Test func aReplyNobodyAskedForFailsTheConnection() throws {
        let channel = try Self.connection()
        try channel.writeInbound(RedisValue.integer(1))
        #expect(!channel.isActive)
        let late = Self.send(RedisCommand("PING"), on: channel)
        #expect(late.code == .protocolViolation, "later commands fail with the reason the connection ended")
    }

    /// The command timeout counts on the wall clock; the test waits it out, then runs the
    /// loop's timers.
    @Test func aLateReplyFailsEveryWaitingCommandAndClosesTheConnection() throws {
        let channel = try Self.connection(commandTimeout: .milliseconds(20))
        let first = Self.send(RedisCommand("GET", "a"), on: channel)
        let second = Self.send(RedisCommand("GET", "b"), on: channel)
        channel.embeddedEventLoop.run()
        channel.embeddedEventLoop.advanceTime(to: .now())
        #expect(first.result == nil, "not yet")
        Thread.sleep(forTimeInterval: 0.04)
        channel.embeddedEventLoop.advanceTime(to: .now())
        #expect(first.code == .timeout)
        #expect(second.code == .timeout)
        #expect(!channel.isActive)
    }

    @Test func aClosedConnectionFailsWhatWaits() throws {
        let channel = try Self.connection()
        let waiting = Self.send(RedisCommand("GET", "a"), on: channel)
        try channel.close().wait()
        #expect(waiting.code == .unavailable)
    }

    @Test func aConnectionErrorFailsWhatWaitsAndCloses() throws {
        let channel = try Self.connection()
        let waiting = Self.send(RedisCommand("GET", "a"), on: channel)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: 104, reason: "read"))
        #expect(waiting.code == .unavailable)
        #expect(!channel.isActive)
    }
}

/// Where a command's reply lands.
final class Reply {
    var result: Result<RedisValue, any Error>?
    var code: StoreError.Code? {
        if case .failure(let error) = result { return (error as? StoreError)?.code }
        return nil
    }
}
