import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
import HTTPTypes

@testable import EKeyServer

/// ``HTTP2ServerConnection`` on an `EmbeddedChannel`, driven by hand-made client frames:
/// the libnghttp2 session without TLS, sockets or processes.
struct HTTP2ServerConnectionTests {
    /// One frame the server wrote.
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
    }

    /// A request header block of literals without indexing (RFC 7541 §6.2.2); names and
    /// values below 127 bytes.
    static func requestBlock(method: String = "POST", path: String = "/upload") -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in [(":method", method), (":scheme", "https"), (":path", path), (":authority", "localhost")] {
            block += [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        return block
    }

    /// A connection whose responder is `respond` (run in tasks, so on a thread-safe
    /// testing channel), with the client's opening frames sent.
    static func connection(_ respond: @escaping InlineResponder) async throws -> NIOAsyncTestingChannel {
        let service = InlineService(respond: respond, serverName: "test", logger: Logger(label: "test"))
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(HTTP2ServerConnection(responder: service, idleLimit: .seconds(60)))
        }
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443))
        try await send(Self.opening, to: channel)
        return channel
    }

    /// A connection whose requests `handler` answers on the loop, with the client's opening frames sent.
    static func connection(handler: @escaping InlineHandler) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let service = InlineService(handle: handler, serverName: "test", logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(HTTP2ServerConnection(responder: service, idleLimit: .seconds(60)))
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        try channel.writeInbound(ByteBuffer(bytes: opening))
        channel.pipeline.fireChannelReadComplete()
        return channel
    }

    /// The client's preface, SETTINGS, and its acknowledgement of the server's (which puts
    /// the server's 256 KiB stream window in force).
    static let opening = preface + frame(type: 0x4, stream: 0) + frame(type: 0x4, flags: 0x1, stream: 0)

    /// Delivers `bytes` as one read.
    static func send(_ bytes: [UInt8], to channel: NIOAsyncTestingChannel) async throws {
        try await channel.writeInbound(ByteBuffer(bytes: bytes))
        try await channel.testingEventLoop.executeInContext { channel.pipeline.fireChannelReadComplete() }
    }

    /// The frames written so far, parsed.
    static func written(_ channel: EmbeddedChannel) throws -> [Frame] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return parse(bytes)
    }

    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var rest = bytes[...]
        while rest.count >= 9 {
            let start = rest.startIndex
            let length = Int(rest[start]) << 16 | Int(rest[start + 1]) << 8 | Int(rest[start + 2])
            let stream = UInt32(rest[start + 5] & 0x7F) << 24 | UInt32(rest[start + 6]) << 16 | UInt32(rest[start + 7]) << 8 | UInt32(rest[start + 8])
            frames.append(Frame(type: rest[start + 3], flags: rest[start + 4], stream: stream, payload: Array(rest.dropFirst(9).prefix(length))))
            rest = rest.dropFirst(9 + length)
        }
        return frames
    }

    /// Waits until `done` holds for the frames written meanwhile (the responder runs in a
    /// task, which hops back to the loop), up to `limit`.
    static func frames(of channel: NIOAsyncTestingChannel, within limit: Duration = .seconds(10), until done: ([Frame]) -> Bool) async throws -> [Frame] {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            await channel.testingEventLoop.run()
            while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                bytes += buffer.readableBytesView
            }
            if done(parse(bytes)) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        return parse(bytes)
    }

    /// The window the server gave `stream` back in WINDOW_UPDATE frames.
    static func windowGiven(_ frames: [Frame], stream: UInt32) -> Int {
        frames.filter { $0.type == 0x8 && $0.stream == stream }.reduce(0) { total, frame in
            total + Int(UInt32(frame.payload[0] & 0x7F) << 24 | UInt32(frame.payload[1]) << 16 | UInt32(frame.payload[2]) << 8 | UInt32(frame.payload[3]))
        }
    }

    @Test func aRequestIsAnsweredOnItsStreamWithHeadersAndOneDataFrame() async throws {
        let channel = try await Self.connection { request, origin in
            #expect(origin.overHTTP2)
            return Response(status: .created, body: .init(byteBuffer: ByteBuffer(string: "\(request.method) \(request.uri.path)")))
        }
        try await Self.send(Self.frame(type: 0x1, flags: 0x5, stream: 1, payload: Self.requestBlock(method: "GET", path: "/a")), to: channel)
        let frames = try await Self.frames(of: channel) { $0.contains { $0.type == 0x0 && $0.stream == 1 } }
        let answer = frames.filter { $0.stream == 1 }
        #expect(answer.map(\.type) == [0x1, 0x0], "HEADERS then one DATA: \(answer.map(\.type))")
        #expect(answer.last.map { String(decoding: $0.payload, as: UTF8.self) } == "GET /a")
        #expect(answer.last.map { $0.flags & 0x1 != 0 } == true, "the DATA frame ends the stream")
        _ = try? await channel.finish()
    }

    /// An answer known from the head leaves in the read that brought the head: no task,
    /// no turn of the event loop; the body that follows is dropped and the stream is not reset.
    @Test func anImmediateAnswerLeavesWithinTheReadThatBroughtTheHead() throws {
        let channel = try Self.connection(handler: { head, origin in
            #expect(origin.overHTTP2)
            return .immediate(HTTPResponse(status: .unauthorized, headerFields: [.wwwAuthenticate: "DPoP"]), ByteBuffer(string: "no \(head.path ?? "")"))
        })
        _ = try Self.written(channel)
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x1, flags: 0x4, stream: 1, payload: Self.requestBlock(path: "/pay"))))
        channel.pipeline.fireChannelReadComplete()
        let answer = try Self.written(channel).filter { $0.stream == 1 }
        #expect(answer.map(\.type) == [0x1, 0x0], "HEADERS and DATA without running the loop: \(answer.map(\.type))")
        #expect(answer.last.map { String(decoding: $0.payload, as: UTF8.self) } == "no /pay")
        #expect(answer.last.map { $0.flags & 0x1 != 0 } == true, "the DATA frame ends the stream")
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x0, flags: 0x1, stream: 1, payload: Array("late body".utf8))))
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
        #expect(!(try Self.written(channel)).contains { $0.type == 0x3 }, "no RST_STREAM for the body that came after the answer")
        _ = try? channel.finish()
    }

    /// An answer that waits for the body is decided in the read that ends it, with the
    /// whole body, and written there; a body over the limit is decided with `nil` as soon
    /// as it outgrows it.
    @Test func anAnswerAfterTheBodyIsDecidedWhenTheBodyEnds() throws {
        let decided = NIOLockedValueBox<[String?]>([])
        let channel = try Self.connection(handler: { _, _ in
            .afterBody(upTo: 8) { body in
                let text = body.map { String(buffer: $0) }
                decided.withLockedValue { $0.append(text) }
                return .immediate(HTTPResponse(status: text == nil ? .contentTooLarge : .created), ByteBuffer(string: text ?? "too large"))
            }
        })
        _ = try Self.written(channel)
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x1, flags: 0x4, stream: 1, payload: Self.requestBlock())))
        channel.pipeline.fireChannelReadComplete()
        #expect(decided.withLockedValue { $0 }.isEmpty, "nothing is decided before the body")
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x0, stream: 1, payload: Array("abc".utf8))))
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x0, flags: 0x1, stream: 1, payload: Array("def".utf8))))
        channel.pipeline.fireChannelReadComplete()
        let first = try Self.written(channel).filter { $0.stream == 1 && $0.type == 0x0 }
        #expect(first.map { String(decoding: $0.payload, as: UTF8.self) } == ["abcdef"], "decided with the whole body, answered in its read")
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x1, flags: 0x4, stream: 3, payload: Self.requestBlock())))
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x0, stream: 3, payload: Array("0123456789".utf8))))
        channel.pipeline.fireChannelReadComplete()
        let second = try Self.written(channel).filter { $0.stream == 3 && $0.type == 0x0 }
        #expect(second.map { String(decoding: $0.payload, as: UTF8.self) } == ["too large"], "decided with nil once over the limit, before the end")
        #expect(decided.withLockedValue { $0 } == ["abcdef", nil])
        _ = try? channel.finish()
    }

    /// A client that finished sending (TLS `close_notify` or TCP FIN) gets no more waiting:
    /// without streams the connection closes at once; a request whose body can no longer
    /// arrive is reset, and an answer being written still goes out before the close.
    @Test func aClientThatFinishedSendingIsAnsweredAndThenClosed() throws {
        let idle = try Self.connection(handler: { _, _ in .immediate(HTTPResponse(status: .ok), ByteBuffer()) })
        _ = try Self.written(idle)
        #expect(idle.isActive)
        idle.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!idle.isActive, "an idle connection closes when the client stops sending")

        let waiting = try Self.connection(handler: { _, _ in
            .afterBody(upTo: 1024) { _ in .immediate(HTTPResponse(status: .created), ByteBuffer(string: "late")) }
        })
        _ = try Self.written(waiting)
        try waiting.writeInbound(ByteBuffer(bytes: Self.frame(type: 0x1, flags: 0x4, stream: 1, payload: Self.requestBlock())))
        waiting.pipeline.fireChannelReadComplete()
        #expect(waiting.isActive)
        waiting.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let frames = try Self.written(waiting)
        #expect(frames.contains { $0.type == 0x3 && $0.stream == 1 }, "the request whose body cannot end is reset: \(frames.map(\.type))")
        #expect(!waiting.isActive, "closed once no stream is left")
    }

    @Test func anAnswerInTheMakingStillGoesOutAfterTheClientFinishedSending() async throws {
        let release = AsyncStream<Void>.makeStream()
        let channel = try await Self.connection { _, _ in
            for await _ in release.stream { break }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "answer")))
        }
        try await Self.send(Self.frame(type: 0x1, flags: 0x5, stream: 1, payload: Self.requestBlock(method: "GET", path: "/a")), to: channel)
        try await channel.testingEventLoop.executeInContext { channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        #expect(channel.isActive, "open while its one request is being answered")
        release.continuation.yield()
        let frames = try await Self.frames(of: channel) { $0.contains { $0.type == 0x0 && $0.stream == 1 } }
        #expect(frames.filter { $0.stream == 1 }.last.map { String(decoding: $0.payload, as: UTF8.self) } == "answer")
        try await Task.sleep(for: .milliseconds(50))
        await channel.testingEventLoop.run()
        #expect(!channel.isActive, "closed after the answer")
        _ = try? await channel.finish()
    }

    /// Window goes back to the client only as the responder reads the body: while it holds
    /// more than ``InboundBodyStream/pauseAbove`` unread, the server stops granting it.
    @Test func aBodyNobodyReadsStopsGettingWindow() async throws {
        let release = AsyncStream<Void>.makeStream()
        let received = AsyncStream<Int>.makeStream()
        let channel = try await Self.connection { request, _ in
            for await _ in release.stream { break }
            var total = 0
            for try await part in request.body { total += part.readableBytes }
            received.continuation.yield(total)
            return Response(status: .ok)
        }
        let chunk = [UInt8](repeating: 0x61, count: 16_384)
        // The stream's first window: 256 KiB, taken at once (nothing is paused yet).
        try await Self.send(
            Self.frame(type: 0x1, flags: 0x4, stream: 1, payload: Self.requestBlock())
                + (0..<16).flatMap { _ in Self.frame(type: 0x0, stream: 1, payload: chunk) }, to: channel)
        let first = Self.windowGiven(try await Self.frames(of: channel) { Self.windowGiven($0, stream: 1) >= 16 * chunk.count }, stream: 1)
        #expect(first == 16 * chunk.count, "the first 256 KiB were given back while the buffer was under the pause mark")
        // The next 256 KiB fill the buffer past the mark: no more window for the stream.
        try await Self.send((0..<16).flatMap { _ in Self.frame(type: 0x0, stream: 1, payload: chunk) }, to: channel)
        let held = Self.windowGiven(try await Self.frames(of: channel, within: .milliseconds(300)) { _ in false }, stream: 1)
        #expect(held < 16 * chunk.count, "while unread, most of the second 256 KiB is not given back: \(held) bytes were")
        // The responder reads: the window held back is given.
        release.continuation.yield()
        try await Self.send(Self.frame(type: 0x0, flags: 0x1, stream: 1), to: channel)
        let after = try await Self.frames(of: channel) { frames in frames.contains { $0.type == 0x1 && $0.stream == 1 } }
        #expect(held + Self.windowGiven(after, stream: 1) == 16 * chunk.count, "once read, all of it is given back")
        var total = 0
        for await count in received.stream {
            total = count
            break
        }
        #expect(total == 32 * chunk.count, "the responder read the whole body")
        _ = try? await channel.finish()
    }
}
