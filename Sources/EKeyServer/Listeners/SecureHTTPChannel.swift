import EKeyConfig
public import HummingbirdCore
public import HummingbirdHTTP2
public import Logging
public import NIOCore
import NIOHTTP2
public import NIOSSL
import NIOTLS

/// The child channel of every E-Key TLS listener: TLS (with client certificates per
/// `client_auth`), the connection's ``PeerIdentityHandler``, then ALPN: `h2` goes to
/// Hummingbird's HTTP/2 channel, `http/1.1` or no ALPN to its HTTP/1.1 channel.
///
/// Hummingbird's own `http2Upgrade` builder cannot host the identity handler on the
/// connection pipeline, so this type does the ALPN switch itself (STYLE.md §2.4).
public struct SecureHTTPChannel: ServerChildChannel {
    public struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<NIONegotiatedHTTPVersion<HTTP1Channel.Value, HTTP2Channel.Value>>
        public let channel: any Channel
    }

    private let tls: ServerTLS
    private let http1: HTTP1Channel
    private let http2: HTTP2Channel

    /// Creates the channel; each new connection takes `tls`'s current context (ALPN `h2`, `http/1.1`).
    public init(
        tls: ServerTLS,
        http2Configuration: HTTP2ChannelConfiguration = ConnectionLimits.http2,
        responder: @escaping HTTPChannelHandler.Responder
    ) {
        self.tls = tls
        self.http1 = HTTP1Channel(responder: responder, configuration: http2Configuration.streamConfiguration)
        self.http2 = HTTP2Channel(responder: responder, configuration: http2Configuration)
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            try TLSCloseShortcut.addHandlers(around: NIOSSLServerHandler(context: tls.context), to: sync)
            try sync.addHandler(PeerIdentityHandler())
            let negotiation = NIOTypedApplicationProtocolNegotiationHandler<
                NIONegotiatedHTTPVersion<HTTP1Channel.Value, HTTP2Channel.Value>
            > { result in
                switch result {
                case .negotiated("h2"):
                    return http2.setup(channel: channel, logger: logger).flatMapThrowing { connection in
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(
                            IdleConnectionCloser(limit: ConnectionLimits.hardIdleLimit),
                            position: .after(try sync.handler(type: NIOHTTP2Handler.self)))
                        return .http2(connection)
                    }
                case .negotiated("http/1.1"), .fallback:
                    return http1.setup(channel: channel, logger: logger).map { .http1_1($0) }
                case .negotiated:
                    return channel.close().flatMap { channel.eventLoop.makeFailedFuture(NIOHTTP2Errors.invalidALPNToken()) }
                }
            }
            try sync.addHandler(negotiation)
            let handshakeDeadline = channel.eventLoop.scheduleTask(in: ConnectionLimits.handshakeTimeout) {
                channel.close(promise: nil)
            }
            negotiation.protocolNegotiationResult.whenComplete { _ in handshakeDeadline.cancel() }
            return Value(negotiated: negotiation.protocolNegotiationResult, channel: channel)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1_1(let connection):
                await http1.handle(value: connection, logger: logger)
            case .http2(let connection):
                await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("TLS or ALPN negotiation failed", metadata: ["error": "\(error)"])
        }
    }
}

extension HTTPServerBuilder {
    /// TLS with ALPN `h2` and `http/1.1`, client certificates per `tlsConfiguration`, and
    /// the peer identity available to every request (`Channel.ekey_peerIdentity()`).
    public static func ekeySecure(
        tlsConfiguration: TLSConfiguration,
        http2Configuration: HTTP2ChannelConfiguration = ConnectionLimits.http2
    ) -> HTTPServerBuilder {
        .init { responder in
            SecureHTTPChannel(tls: try ServerTLS(configuration: tlsConfiguration), http2Configuration: http2Configuration, responder: responder)
        }
    }

    /// ``ekeySecure(tlsConfiguration:http2Configuration:)`` over a reloadable ``ServerTLS``.
    public static func ekeySecure(tls: ServerTLS, http2Configuration: HTTP2ChannelConfiguration = ConnectionLimits.http2) -> HTTPServerBuilder {
        .init { responder in
            SecureHTTPChannel(tls: tls, http2Configuration: http2Configuration, responder: responder)
        }
    }
}

extension HTTPServerBuilder {
    /// The main listener of a service: ``ekeySecure(tls:http2Configuration:)``
    /// with TLS, or plaintext HTTP/1.1 for `tls: none` after logging `plaintextWarning`
    /// loudly (local debugging only).
    public static func ekeyMain(tls: ServerTLS?, plaintextWarning: String, logger: Logger) -> HTTPServerBuilder {
        guard let tls else {
            logger.warning("\(plaintextWarning)")
            return .http1(configuration: ConnectionLimits.http2.streamConfiguration)
        }
        return .ekeySecure(tls: tls)
    }
}

/// Limits on downstream connections, so idle or stalled clients cannot pin memory:
/// a TLS handshake and ALPN must finish within ``handshakeTimeout``; a connection with no
/// request in flight is closed after ``idleTimeout`` (an HTTP/2 client that ignores the
/// graceful GOAWAY gets ``idleCloseGrace`` more, then is closed). Header lists are bounded by
/// Hummingbird's defaults (80 KiB per field and per list, 1,000 fields), and HTTP/2 frame
/// abuse (reset floods, CONTINUATION floods) by SwiftNIO's HTTP/2 handler.
public enum ConnectionLimits {
    /// Time allowed for the TLS handshake and protocol negotiation: the default of a
    /// service's `connections.handshake`.
    public static let handshakeTimeout = TimeAmount(ConnectionsConfig().handshake)
    /// Time an HTTP/1.1 keep-alive connection or an HTTP/2 connection without open streams
    /// may stay idle: the default of a service's `connections.idle`.
    public static let idleTimeout: Duration = ConnectionsConfig().idle
    /// Time an idle HTTP/2 client has, after the graceful GOAWAY and PING sent at
    /// ``idleTimeout``, to close; then the connection is closed without waiting for it.
    public static let idleCloseGrace: Duration = .seconds(10)

    /// HTTP/1.1 header limits (Hummingbird's defaults): bytes per field, bytes per list, fields.
    public static let maxHeaderFieldSize = 80 * 1024
    public static let maxHeaderListSize = 80 * 1024
    public static let maxHeaderFieldCount = 1000

    static var hardIdleLimit: TimeAmount {
        .seconds((idleTimeout + idleCloseGrace).components.seconds)
    }

    /// Hummingbird's HTTP/2 settings with the idle limit on the connection and its streams' HTTP/1 codec.
    public static var http2: HTTP2ChannelConfiguration {
        HTTP2ChannelConfiguration(
            idleTimeout: idleTimeout,
            streamConfiguration: HTTP1Channel.Configuration(idleTimeout: .seconds(idleTimeout.components.seconds)))
    }
}
