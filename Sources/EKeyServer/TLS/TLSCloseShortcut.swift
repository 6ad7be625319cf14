import NIOCore
import NIOSSL

/// Ends a TLS connection as soon as both sides are done with it.
///
/// When a service closes a connection (shutdown, idle limit, `GOAWAY`), the TLS handler
/// sends `close_notify` and waits up to its shutdown timeout (5 s) for the peer's
/// `close_notify`. A peer that has already finished sending (its TCP FIN arrived, the
/// listeners allow half-closed connections) never sends one, so the wait only held the
/// socket, and a graceful shutdown, for those 5 s. This pair of handlers, one on each side
/// of the TLS handler, closes the socket at once when the application has asked to close
/// and the peer has finished sending, in either order. A peer that is still sending keeps
/// the TLS handler's clean shutdown.
enum TLSCloseShortcut {
    /// Adds the pair around `tls` (the server's TLS handler), first in the pipeline.
    static func addHandlers(around tls: NIOSSLServerHandler, to pipeline: ChannelPipeline.SynchronousOperations) throws {
        let state = State()
        try pipeline.addHandler(SocketSide(state: state))
        try pipeline.addHandler(tls)
        try pipeline.addHandler(ApplicationSide(state: state))
    }

    /// What both halves know; touched on the channel's event loop only.
    final class State {
        var closeRequested = false
        var peerFinished = false
        var socketSide: SocketSide?
    }

    /// Below TLS: learns that the peer finished sending, and closes the socket.
    final class SocketSide: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let state: State
        private var context: ChannelHandlerContext?
        private var closing = false

        init(state: State) {
            self.state = state
        }

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
            state.socketSide = self
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            self.context = nil
            state.socketSide = nil
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event {
                state.peerFinished = true
                if state.closeRequested { closeAfterPendingWrites() }
            }
            context.fireUserInboundEventTriggered(event)
        }

        /// Closes the socket once everything written so far (the TLS `close_notify` last)
        /// has reached it; the close skips the TLS handler's wait.
        func closeAfterPendingWrites() {
            guard !closing, let context else { return }
            closing = true
            context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// Above TLS: learns that the application asked to close.
    final class ApplicationSide: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = NIOAny
        let state: State

        init(state: State) {
            self.state = state
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            context.close(mode: mode, promise: promise)
            guard mode == .all else { return }
            state.closeRequested = true
            if state.peerFinished { state.socketSide?.closeAfterPendingWrites() }
        }
    }
}
