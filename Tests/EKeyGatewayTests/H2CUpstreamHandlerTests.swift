import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP2
import NIOHTTPTypes
import Synchronization
import Testing

@testable import EKeyGateway

/// The two handlers of an `h2c://` upstream connection, on `EmbeddedChannel`s whose clock
/// moves only when the test moves it: ``UpstreamTimeoutHandler`` on a stream and
/// ``ConnectionWatcher`` on the connection.
struct H2CUpstreamHandlerTests {
    static let firstByte = TimeAmount.seconds(30)
    static let idle = TimeAmount.seconds(10)

    /// A connected stream channel with the timeout handler in front of a recorder of the
    /// errors and reads it passes on, and an outbound stage that can refuse writes.
    static func stream() throws -> (channel: EmbeddedChannel, seen: StreamRecorder, refuser: WriteRefuser) {
        let channel = EmbeddedChannel()
        let seen = StreamRecorder()
        let refuser = WriteRefuser()
        try channel.pipeline.syncOperations.addHandlers([refuser, UpstreamTimeoutHandler(firstByte: firstByte, idle: idle), seen])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8081)).wait()
        return (channel, seen, refuser)
    }

    static func head(_ status: HTTPResponse.Status) -> HTTPResponsePart {
        .head(HTTPResponse(status: status))
    }

    @Test func noHeadWithinFirstByteEndsTheStream() throws {
        let (channel, seen, _) = try Self.stream()
        // An interim 100 is not the response: first_byte still runs.
        try channel.writeInbound(Self.head(.continue))
        channel.embeddedEventLoop.advanceTime(by: Self.firstByte - .milliseconds(1))
        #expect(channel.isActive)
        #expect(seen.timeouts.isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(seen.timeouts == [.firstByte])
        #expect(!channel.isActive)
    }

    @Test func afterTheHeadEachReadRestartsIdle() throws {
        let (channel, seen, _) = try Self.stream()
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        try channel.writeInbound(Self.head(.ok))
        for _ in 0..<5 {
            channel.embeddedEventLoop.advanceTime(by: Self.idle - .milliseconds(1))
            try channel.writeInbound(HTTPResponsePart.body(ByteBuffer(string: "part")))
        }
        #expect(channel.isActive, "50 s in all, but never 10 s without a read")
        #expect(seen.reads == 6, "every part goes on to the reader")
        channel.embeddedEventLoop.advanceTime(by: Self.idle)
        #expect(seen.timeouts == [.idle])
        #expect(!channel.isActive)
    }

    @Test func aHeadThatCannotBeWrittenIsReportedAtOnce() throws {
        let (channel, seen, refuser) = try Self.stream()
        refuser.refusal = Refused()
        channel.write(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "api", path: "/")), promise: nil)
        channel.flush()
        #expect(seen.errors.contains { $0 is Refused }, "\(seen.errors)")
        #expect(!channel.isActive)
    }

    @Test func aHeadRefusedBecauseTheStreamClosedIsLeftToTheStream() throws {
        let (channel, seen, refuser) = try Self.stream()
        refuser.refusal = ChannelError.ioOnClosedChannel
        channel.write(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "api", path: "/")), promise: nil)
        channel.flush()
        #expect(seen.errors.isEmpty, "\(seen.errors)")
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test func aRemovedHandlerTimesNothingOut() throws {
        let (channel, seen, _) = try Self.stream()
        let handler = try channel.pipeline.syncOperations.handler(type: UpstreamTimeoutHandler.self)
        try channel.pipeline.syncOperations.removeHandler(handler).wait()
        channel.embeddedEventLoop.advanceTime(by: Self.firstByte * 2)
        #expect(seen.timeouts.isEmpty)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func theWatcherReportsGoAwayAndOnlyTheErrorsThatEndTheConnection() throws {
        let goAways = Recorded<HTTP2StreamID>()
        let errors = Recorded<String>()
        let channel = EmbeddedChannel(
            handler: ConnectionWatcher(onGoAway: { goAways.append($0) }, onError: { errors.append("\(type(of: $0))") }))
        try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 1), ack: false)))
        try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: 7, errorCode: .noError, opaqueData: nil)))
        #expect(goAways.values == [7])
        #expect(try channel.readInbound(as: HTTP2Frame.self) != nil, "frames go on")

        channel.pipeline.fireErrorCaught(NIOHTTP2Errors.contentLengthViolated())
        #expect(errors.values.isEmpty, "a stream error leaves the connection usable")
        channel.pipeline.fireErrorCaught(NIOHTTP2Errors.excessiveRSTFrames())
        channel.pipeline.fireErrorCaught(IOError(errnoCode: 104, reason: "read"))
        #expect(errors.values == ["ExcessiveRSTFrames", "IOError"])
        _ = try? channel.finish()
    }
}

struct Refused: Error {}

/// Records what the timeout handler passes on: reads, timeouts and other errors.
final class StreamRecorder: ChannelInboundHandler {
    typealias InboundIn = HTTPResponsePart

    private(set) var reads = 0
    private(set) var errors: [any Error] = []
    var timeouts: [UpstreamTimeout.Stage] { errors.compactMap { ($0 as? UpstreamTimeout)?.stage } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reads += 1
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }
}

/// Fails every write with `refusal` when one is set.
final class WriteRefuser: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var refusal: (any Error)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if let refusal {
            promise?.fail(refusal)
        } else {
            context.write(data, promise: promise)
        }
    }
}

/// Values handed to a `@Sendable` callback.
final class Recorded<Value: Sendable>: Sendable {
    private let box = Mutex<[Value]>([])
    var values: [Value] { box.withLock { $0 } }
    func append(_ value: Value) { box.withLock { $0.append(value) } }
}
