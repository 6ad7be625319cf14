public import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of every connection and computes the ``PeerIdentity`` once,
/// when the handshake completes. Requests read it with `Channel.ekey_peerIdentity()`.
public final class PeerIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    /// The identity, once the handshake completed with a client certificate.
    private(set) var identity: PeerIdentity?

    public init() {}

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event,
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        {
            identity = try? PeerIdentity(certificate: certificate)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension PeerIdentityHandler: Sendable {}

extension Channel {
    /// The TLS client identity of the connection this channel belongs to, or `nil` when
    /// the client sent no certificate, the listener is plaintext, or there is no
    /// connection (router tests): callers fail closed on `nil`.
    ///
    /// HTTP/1.1 requests carry the connection channel itself; HTTP/2 requests carry a
    /// stream channel whose `parent` is the connection (STYLE.md §2.1).
    public func ekey_peerIdentity() async -> PeerIdentity? {
        let channel = self
        return try? await eventLoop.submit { () -> PeerIdentity? in
            if let handler = try? channel.pipeline.syncOperations.handler(type: PeerIdentityHandler.self) {
                return handler.identity
            }
            guard let parent = channel.parent, parent.eventLoop.inEventLoop,
                let handler = try? parent.pipeline.syncOperations.handler(type: PeerIdentityHandler.self)
            else { return nil }
            return handler.identity
        }.get()
    }
}
