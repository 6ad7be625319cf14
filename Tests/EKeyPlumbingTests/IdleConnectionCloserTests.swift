import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import EKeyServer

/// ``IdleConnectionCloser`` on an `EmbeddedChannel`, whose clock moves only when the test
/// moves it: the hard idle stop of an HTTP/2 connection, counted from its last open stream.
struct IdleConnectionCloserTests {
    static let limit = TimeAmount.seconds(10)

    /// A connected channel with the closer, and a recorder of the events it passes on.
    static func connection() throws -> (channel: EmbeddedChannel, events: EventRecorder) {
        let channel = EmbeddedChannel()
        let events = EventRecorder()
        try channel.pipeline.syncOperations.addHandlers([IdleConnectionCloser(limit: limit), events])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        return (channel, events)
    }

    static func streamOpened(_ id: Int, on channel: EmbeddedChannel) {
        channel.pipeline.fireUserInboundEventTriggered(
            NIOHTTP2StreamCreatedEvent(streamID: HTTP2StreamID(id), localInitialWindowSize: nil, remoteInitialWindowSize: nil))
    }

    static func streamClosed(_ id: Int, on channel: EmbeddedChannel) {
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: HTTP2StreamID(id), reason: nil))
    }

    @Test func aConnectionThatNeverOpensAStreamClosesAtTheLimit() throws {
        let (channel, _) = try Self.connection()
        channel.embeddedEventLoop.advanceTime(by: Self.limit - .milliseconds(1))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test func openStreamsHoldTheConnectionAndTheLastOneToCloseRestartsTheLimit() throws {
        let (channel, events) = try Self.connection()
        Self.streamOpened(1, on: channel)
        Self.streamOpened(3, on: channel)
        channel.embeddedEventLoop.advanceTime(by: Self.limit * 3)
        #expect(channel.isActive, "two streams are open")

        Self.streamClosed(1, on: channel)
        channel.embeddedEventLoop.advanceTime(by: Self.limit * 3)
        #expect(channel.isActive, "stream 3 is still open")

        Self.streamClosed(3, on: channel)
        channel.embeddedEventLoop.advanceTime(by: Self.limit - .milliseconds(1))
        #expect(channel.isActive, "the limit counts from the last stream's close")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
        #expect(events.names == ["opened 1", "opened 3", "closed 1", "closed 3"], "every event goes on: \(events.names)")
    }

    @Test func aStreamOpenedAfterAnIdlePeriodStopsTheClock() throws {
        let (channel, _) = try Self.connection()
        channel.embeddedEventLoop.advanceTime(by: Self.limit - .seconds(1))
        Self.streamOpened(1, on: channel)
        channel.embeddedEventLoop.advanceTime(by: Self.limit * 2)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func removingTheCloserCancelsItsDeadline() throws {
        let (channel, _) = try Self.connection()
        let closer = try channel.pipeline.syncOperations.handler(type: IdleConnectionCloser.self)
        try channel.pipeline.syncOperations.removeHandler(closer).wait()
        channel.embeddedEventLoop.advanceTime(by: Self.limit * 2)
        #expect(channel.isActive)
        _ = try channel.finish()
    }
}

/// Records the HTTP/2 stream events that reach the end of the pipeline.
final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = Never

    private(set) var names: [String] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let opened = event as? NIOHTTP2StreamCreatedEvent {
            names.append("opened \(Int(opened.streamID))")
        } else if let closed = event as? StreamClosedEvent {
            names.append("closed \(Int(closed.streamID))")
        } else {
            names.append("\(event)")
        }
    }
}
