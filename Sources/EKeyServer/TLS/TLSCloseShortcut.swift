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
        let socketSide = SocketSide()
        try pipeline.addHandler(socketSide)
        try pipeline.addHandler(tls)
        try pipeline.addHandler(ApplicationSide(socketSide: socketSide))
    }

    /// Below TLS: knows whether the peer finished sending and whether the application asked
    /// to close, and closes the socket when both hold.
    final class SocketSide: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        private var context: ChannelHandlerContext?
        private var peerFinished = false
        private var closeRequested = false
        private var closing = false

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            self.context = nil
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event {
                peerFinished = true
                closeIfBothDone()
            }
            context.fireUserInboundEventTriggered(event)
        }

        /// The application asked to close (``ApplicationSide``).
        func applicationClosed() {
            closeRequested = true
            closeIfBothDone()
        }

        /// Closes the socket once everything written so far (the TLS `close_notify` last)
        /// has reached it; the close skips the TLS handler's wait.
        private func closeIfBothDone() {
            guard peerFinished, closeRequested, !closing, let context else { return }
            closing = true
            context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// Above TLS: tells ``SocketSide`` that the application asked to close.
    final class ApplicationSide: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = NIOAny
        let socketSide: SocketSide

        init(socketSide: SocketSide) {
            self.socketSide = socketSide
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            context.close(mode: mode, promise: promise)
            if mode == .all { socketSide.applicationClosed() }
        }
    }
}
