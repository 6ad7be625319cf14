public import EKeyConfig
public import Hummingbird
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOHTTPTypesHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// A listener whose requests are answered from the connection's pipeline instead of
/// Hummingbird's per-stream async channels: the main listener of every service. HTTP/2 connections are
/// served by a libnghttp2 session (``HTTP2ServerConnection``), HTTP/1.1 connections by
/// ``InlineRequestHandler``.
///
/// TLS with client certificates per `client_auth` and the ``PeerIdentityHandler``, ALPN
/// `h2` or `http/1.1`, the limits of `connections` (handshake deadline, idle GOAWAY and
/// close, stream idle) and of ``ConnectionLimits`` (header lists), and graceful quiescing at shutdown. Without TLS
/// (`tls: none`) it serves plaintext HTTP/1.1.
public struct InlineHTTPChannel: ServerChildChannel {
    public struct Value: ServerChildChannelValue {
        public let channel: any Channel
    }

    private let tls: ServerTLS?
    private let handler: InlineHandler
    private let serverName: String
    private let connections: ConnectionsConfig

    /// Creates the listener's child channel; each new connection takes `tls`'s current
    /// context (ALPN `h2`, `http/1.1`); `nil` means plaintext HTTP/1.1. `handler` decides
    /// each request's answer on the event loop. `connections` bounds the handshake and idle times.
    public init(tls: ServerTLS?, serverName: String, connections: ConnectionsConfig = ConnectionsConfig(), handler: @escaping InlineHandler) {
        self.tls = tls
        self.handler = handler
        self.serverName = serverName
        self.connections = connections
    }

    /// A listener whose every request is answered by `responder` in a task.
    public init(tls: ServerTLS?, serverName: String, connections: ConnectionsConfig = ConnectionsConfig(), responder: @escaping InlineResponder) {
        self.init(tls: tls, serverName: serverName, connections: connections, handler: InlineService.inTask(responder))
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            guard let tls else {
                try configureHTTP1(channel, secure: false, logger: logger)
                return Value(channel: channel)
            }
            try TLSCloseShortcut.addHandlers(around: NIOSSLServerHandler(context: tls.context), to: sync)
            try sync.addHandler(PeerIdentityHandler())
            let handshakeDeadline = channel.eventLoop.scheduleTask(in: TimeAmount(connections.handshake)) {
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

    private var streamIdleLimit: TimeAmount { TimeAmount(connections.idle) }

    private func configureHTTP2(_ channel: any Channel, logger: Logger) throws {
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ServerConnection(responder: InlineService(handle: handler, serverName: serverName, logger: logger), idleLimit: connections.idle))
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
            InlineRequestHandler(
                responder: InlineService(handle: handler, serverName: serverName, logger: logger), idleLimit: streamIdleLimit,
                servesManyRequests: true))
    }
}

extension InlineHTTPChannel {
    /// A listener answering with `responder` in an ``EKeyRequestContext`` that carries the
    /// connection's TLS identity and whether the request came over HTTP/2.
    public init(
        tls: ServerTLS?, serverName: String, connections: ConnectionsConfig = ConnectionsConfig(), responder: some HTTPResponder<EKeyRequestContext>, logger: Logger
    ) {
        self.init(tls: tls, serverName: serverName, connections: connections) { request, origin in
            try await responder.respond(to: request, context: EKeyRequestContext(origin: origin, logger: logger))
        }
    }

    /// The main listener of a service on `host`:`port`, serving `listener`. Without TLS it
    /// logs `plaintextWarning` loudly first (`tls: none` is for local debugging only).
    /// `onRunning` gets the bound port.
    public static func server(
        _ listener: InlineHTTPChannel, host: String, port: Int, serverName: String, plaintextWarning: String, logger: Logger,
        onRunning: @escaping @Sendable (_ port: Int) async -> Void
    ) -> Server<InlineHTTPChannel> {
        if listener.tls == nil {
            logger.warning("\(plaintextWarning)")
        }
        return Server(
            childChannelSetup: listener,
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger)
    }
}
