public import Hummingbird
public import NIOCore
public import Logging

/// The request context of every E-Key service: Hummingbird's core storage plus the
/// channel the request came on, from which the TLS peer identity is read.
public struct EKeyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The request's channel: the connection for HTTP/1.1, a stream for HTTP/2.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.isHTTP2Stream = source.channel.parent?.parent != nil
    }

    /// The context of a request on an ``InlineHTTPChannel``: its connection, protocol and
    /// TLS identity as the listener knows them.
    public init(origin: InlineRequestOrigin, logger: Logger) {
        self.init(source: .init(channel: origin.connection, logger: logger))
        isHTTP2Stream = origin.overHTTP2
        knownPeerIdentity = .some(origin.peer)
    }

    /// The connection's TLS client identity when the listener read it already (the
    /// gateway's); `nil` means it is read from the channel.
    public var knownPeerIdentity: PeerIdentity??

    /// The caller's TLS client identity, or `nil` (no certificate, plaintext, tests without a connection).
    public func peerIdentity() async -> PeerIdentity? {
        if let knownPeerIdentity { return knownPeerIdentity }
        return await channel.ekey_peerIdentity()
    }

    /// Whether the request came on a stream of an HTTP/2 connection, where
    /// connection-specific header fields such as `Connection` are forbidden. Hummingbird's
    /// listeners give each stream a channel whose parent is its connection, whose parent is
    /// the listening socket; the gateway's listener, which has no stream channels, sets it.
    public var isHTTP2Stream: Bool

    /// The caller's IP address, for audit events.
    public var clientAddress: String? {
        (channel.parent?.remoteAddress ?? channel.remoteAddress)?.ipAddress
    }
}
