public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOHTTPTypesHTTP1
import NIOHTTPTypesHTTP2
public import NIOSSL
import NIOTLS

/// A listener whose requests are answered from the channel pipeline (``InlineRequestHandler``)
/// instead of Hummingbird's per-stream async channels: the gateway's hot path.
///
/// Same wire behaviour as ``SecureHTTPChannel``: TLS with client certificates per
/// `client_auth` and the ``PeerIdentityHandler``, ALPN `h2` or `http/1.1`, SwiftNIO's HTTP/2
/// settings and abuse limits, the limits of ``ConnectionLimits`` (handshake deadline, idle
/// GOAWAY and hard close, stream idle), and graceful quiescing at shutdown. Without TLS
/// (`tls: none`) it serves plaintext HTTP/1.1.
public struct InlineHTTPChannel: ServerChildChannel {
    public struct Value: ServerChildChannelValue {
        public let channel: any Channel
    }

    private let tls: ServerTLS?
    private let responder: InlineResponder
    private let serverName: String

    /// Creates the listener's child channel; each new connection takes `tls`'s current
    /// context (ALPN `h2`, `http/1.1`); `nil` means plaintext HTTP/1.1.
    public init(tls: ServerTLS?, serverName: String, responder: @escaping InlineResponder) {
        self.tls = tls
        self.responder = responder
        self.serverName = serverName
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            guard let tls else {
                try configureHTTP1(channel, secure: false, logger: logger)
                return Value(channel: channel)
            }
            try sync.addHandler(NIOSSLServerHandler(context: tls.context))
            try sync.addHandler(PeerIdentityHandler())
            let handshakeDeadline = channel.eventLoop.scheduleTask(in: ConnectionLimits.handshakeTimeout) {
                channel.close(promise: nil)
            }
            let negotiation = ApplicationProtocolNegotiationHandler { result, channel in
                handshakeDeadline.cancel()
                let configured = channel.eventLoop.makeCompletedFuture {
                    switch result {
                    case .negotiated("h2"):
                        try configureHTTP2(channel, logger: logger)
                    case .negotiated("http/1.1"), .fallback:
                        try configureHTTP1(channel, secure: true, logger: logger)
                    case .negotiated:
                        throw NIOHTTP2Errors.invalidALPNToken()
                    }
                }
                configured.whenFailure { error in
                    logger.debug("protocol negotiation failed", metadata: ["error": "\(error)"])
                    channel.close(promise: nil)
                }
                return configured
            }
            try sync.addHandler(negotiation)
            return Value(channel: channel)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        try? await value.channel.closeFuture.get()
    }

    private var streamIdleLimit: TimeAmount { .seconds(ConnectionLimits.idleTimeout.components.seconds) }

    private func configureHTTP2(_ channel: any Channel, logger: Logger) throws {
        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                maxIdleTime: streamIdleLimit, maxAge: nil,
                maxGraceTime: .seconds(ConnectionLimits.idleCloseGrace.components.seconds), keepalive: nil))
        let responder = self.responder
        let serverName = self.serverName
        let idleLimit = streamIdleLimit
        let http2 = NIOHTTP2Handler(mode: .server, eventLoop: channel.eventLoop, streamDelegate: manager.http2StreamDelegate) { stream in
            stream.eventLoop.makeCompletedFuture {
                let sync = stream.pipeline.syncOperations
                try sync.addHandler(HTTP2FramePayloadToHTTPServerCodec())
                try sync.addHandler(
                    InlineRequestHandler(responder: responder, serverName: serverName, logger: logger, idleLimit: idleLimit, servesManyRequests: false))
            }
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescer())
        try sync.addHandler(http2)
        try sync.addHandler(manager)
        try sync.addHandler(IdleConnectionCloser(limit: ConnectionLimits.hardIdleLimit))
        try sync.addHandler(ConnectionErrorCloser())
        // The manager starts its idle timer on channelActive, which this connection passed
        // before ALPN chose HTTP/2; it is replayed to the handlers after NIOHTTP2Handler.
        try sync.context(handler: http2).fireChannelActive()
    }

    private func configureHTTP1(_ channel: any Channel, secure: Bool, logger: Logger) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = ConnectionLimits.maxHeaderFieldSize
        limits.maxHeaderListSize = ConnectionLimits.maxHeaderListSize
        limits.maxHeaderFieldCount = ConnectionLimits.maxHeaderFieldCount
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
        // Parse errors are answered by InlineRequestHandler, which knows whether a response
        // to the broken request has started (NIO's error handler would add a second one).
        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: secure))
        try sync.addHandler(
            InlineRequestHandler(responder: responder, serverName: serverName, logger: logger, idleLimit: streamIdleLimit, servesManyRequests: true))
    }
}

/// Closes an HTTP/2 connection on the error NIOHTTP2Handler reports after a connection
/// error (it has already sent GOAWAY), or on any other error reaching the pipeline's end.
final class ConnectionErrorCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Merges the flushes that an HTTP/2 connection's streams make within one turn of the event
/// loop into one, so responses finished by several request tasks in a row leave in one TLS
/// write instead of one each.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            context.flush()
        }
    }
}
