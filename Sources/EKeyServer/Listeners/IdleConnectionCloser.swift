import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 connection that has had no open stream for ``ConnectionLimits/idleTimeout``
/// plus ``ConnectionLimits/idleCloseGrace``.
///
/// Hummingbird's connection manager answers the idle limit with a graceful GOAWAY and a PING,
/// and closes the connection only once the client acknowledges the PING. A client that never
/// does (a slowloris, or a broken peer) would keep the connection, its TLS state and its
/// buffers forever; this handler is the hard stop behind the graceful one.
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    private let limit: TimeAmount
    private var openStreams = 0
    private var deadline: Scheduled<Void>?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is NIOHTTP2StreamCreatedEvent {
            openStreams += 1
            deadline?.cancel()
            deadline = nil
        } else if event is StreamClosedEvent {
            openStreams = max(0, openStreams - 1)
            if openStreams == 0 { arm(context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: limit) {
            channel.close(promise: nil)
        }
    }
}
