import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import EKeyGateway
@testable import EKeyServer

/// ``HTTP1ExchangeHandler`` on an `EmbeddedChannel`, the upstream's side played by hand:
/// what goes out for a request, a small response handed over whole, a large one streamed
/// with reading held back, when the connection goes back to the pool or closes, and how a
/// broken exchange is reported.
struct HTTP1ExchangeHandlerTests {
    /// A connected channel with the handler behind a counter of the reads that reach the socket.
    static func connection(firstByte: TimeAmount = .seconds(30), idle: TimeAmount = .seconds(60)) throws
        -> (channel: EmbeddedChannel, handler: HTTP1ExchangeHandler, reads: ReadTally)
    {
        let channel = EmbeddedChannel()
        let handler = HTTP1ExchangeHandler(firstByte: firstByte, idle: idle)
        let reads = ReadTally()
        try channel.pipeline.syncOperations.addHandlers([reads, handler])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return (channel, handler, reads)
    }

    /// Starts an exchange; the response start (or failure) lands in the returned box.
    static func start(
        _ handler: HTTP1ExchangeHandler, on channel: EmbeddedChannel, body: String? = "{}", bodyFollows: Bool = false
    ) -> (accepted: Bool, outcome: Outcome) {
        let outcome = Outcome()
        let promise = channel.eventLoop.makePromise(of: HTTP1ResponseStart.self)
        promise.futureResult.assumeIsolated().whenComplete { outcome.result = $0 }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/payments", headers: ["host": "api"])
        let accepted = handler.start(head, body: body.map { ByteBuffer(string: $0) }, bodyFollows: bodyFollows, promise: promise)
        return (accepted, outcome)
    }

    static func respond(_ channel: EmbeddedChannel, status: HTTPResponseStatus = .ok, headers: HTTPHeaders, body: [String] = [], end: Bool = true) throws {
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        for part in body { try channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: part))) }
        if end { try channel.writeInbound(HTTPClientResponsePart.end(nil)) }
    }

    @Test func theRequestGoesOutWholeAndASmallResponseComesBackWhole() throws {
        let (channel, handler, _) = try Self.connection()
        var reusable = 0
        handler.onReusable = { reusable += 1 }
        let (accepted, outcome) = Self.start(handler, on: channel)
        #expect(accepted)
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self)
            == .head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/payments", headers: ["host": "api"])))
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == .body(.byteBuffer(ByteBuffer(string: "{}"))))
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == .end(nil))

        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .continue)))
        try Self.respond(channel, status: .created, headers: ["content-length": "5"], body: ["hel", "lo"], end: false)
        #expect(outcome.result == nil, "a body of known small length is handed over once it ended")
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
        let start = try #require(try outcome.result?.get())
        #expect(start.head.status == .created, "the interim 100 is not the answer")
        guard case .whole(let body) = start.contents else {
            Issue.record("a small response with content-length comes whole")
            return
        }
        #expect(String(buffer: body) == "hello")
        #expect(reusable == 1)
        #expect(channel.isActive)

        // The same connection carries the next exchange.
        #expect(Self.start(handler, on: channel).accepted)
    }

    @Test func anUpstreamThatSaysCloseIsClosedNotReused() throws {
        let (channel, handler, _) = try Self.connection()
        var reusable = 0
        handler.onReusable = { reusable += 1 }
        let (_, outcome) = Self.start(handler, on: channel)
        try Self.respond(channel, headers: ["content-length": "2", "connection": "close"], body: ["ok"])
        #expect(try outcome.result?.get().head.status == .ok)
        #expect(reusable == 0)
        #expect(!channel.isActive)
    }

    @Test func aRequestWhoseBodyIsStillComingIsNotReusedEarly() throws {
        let (channel, handler, _) = try Self.connection()
        var reusable = 0
        handler.onReusable = { reusable += 1 }
        let (_, outcome) = Self.start(handler, on: channel, body: nil, bodyFollows: true)
        try Self.respond(channel, status: .payloadTooLarge, headers: ["content-length": "0"])
        #expect(reusable == 0, "the upstream answered before the request body ended: the connection cannot carry another")
        #expect(!channel.isActive)
        // The response body is held until here: dropping it unfinished would close the connection itself.
        withExtendedLifetime(outcome) {}
    }

    /// A streaming body nobody holds any more, before its end, takes the connection with it:
    /// what is left of the response can never be read, so the connection cannot be reused.
    @Test func aStreamingBodyDroppedBeforeItsEndClosesTheConnection() throws {
        let (channel, handler, _) = try Self.connection()
        var pending: Outcome? = Self.start(handler, on: channel).outcome
        try Self.respond(channel, headers: ["transfer-encoding": "chunked"], body: ["part"], end: false)
        #expect(pending?.result != nil, "the response started")
        #expect(channel.isActive, "its body is still wanted")
        pending = nil
        #expect(!channel.isActive)
    }

    /// A body without a small `content-length` streams; while more than
    /// ``InboundBodyStream/pauseAbove`` is unread, reads are held back.
    @Test func aLargeResponseStreamsAndHoldsBackReadingWhileUnread() throws {
        let (channel, handler, reads) = try Self.connection()
        let (_, outcome) = Self.start(handler, on: channel)
        try Self.respond(channel, headers: ["transfer-encoding": "chunked"], end: false)
        let start = try #require(try outcome.result?.get())
        guard case .streaming(let body) = start.contents else {
            Issue.record("a response without content-length streams")
            return
        }
        let before = reads.count
        channel.read()
        #expect(reads.count == before + 1, "below the limit, reads go through")

        let chunk = String(repeating: "a", count: 16 * 1024)
        for _ in 0...(InboundBodyStream.pauseAbove / chunk.utf8.count) {
            try channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: chunk)))
        }
        #expect(body.stream.isPaused)
        channel.read()
        #expect(reads.count == before + 1, "over the limit, the read is held back")

        try channel.close().wait()
        #expect(!body.stream.hasEnded, "a connection lost mid-body does not end the body normally")
    }

    @Test func aConnectionClosedBeforeTheAnswerSaysWhetherItHadBeenReused() throws {
        let (fresh, freshHandler, _) = try Self.connection()
        let (_, first) = Self.start(freshHandler, on: fresh)
        try fresh.close().wait()
        #expect((first.error as? HTTP1ClosedBeforeAnswer)?.reusedConnection == false)

        let (reused, reusedHandler, _) = try Self.connection()
        _ = Self.start(reusedHandler, on: reused)
        try Self.respond(reused, headers: ["content-length": "0"])
        let (_, second) = Self.start(reusedHandler, on: reused)
        try reused.close().wait()
        #expect((second.error as? HTTP1ClosedBeforeAnswer)?.reusedConnection == true, "\(String(describing: second.error))")

        #expect(!Self.start(reusedHandler, on: reused).accepted, "a closed connection takes no exchange")
    }

    @Test func aResponseNobodyAskedForClosesTheConnection() throws {
        let (channel, _, _) = try Self.connection()
        try Self.respond(channel, headers: ["content-length": "0"])
        #expect(!channel.isActive)
    }

    /// `first_byte` counts on the wall clock from the request; the test waits it out, then
    /// runs the loop's timers.
    @Test func noAnswerWithinFirstByteFailsTheExchangeAndClosesTheConnection() throws {
        let (channel, handler, _) = try Self.connection(firstByte: .milliseconds(30))
        let (_, outcome) = Self.start(handler, on: channel)
        channel.embeddedEventLoop.advanceTime(to: .now())
        #expect(outcome.result == nil, "not yet")
        Thread.sleep(forTimeInterval: 0.05)
        channel.embeddedEventLoop.advanceTime(to: .now())
        #expect((outcome.error as? UpstreamTimeout)?.stage == .firstByte, "\(String(describing: outcome.error))")
        #expect(!channel.isActive)
    }
}

/// Where an exchange's response start lands.
final class Outcome {
    var result: Result<HTTP1ResponseStart, any Error>?
    var error: (any Error)? {
        if case .failure(let error) = result { return error }
        return nil
    }
}

/// Counts the reads that pass it on their way to the socket.
final class ReadTally: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private(set) var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
