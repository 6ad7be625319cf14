public import Hummingbird
public import NIOCore

/// The request context of every E-Key service: Hummingbird's core storage plus the
/// channel the request came on, from which the TLS peer identity is read.
public struct EKeyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The request's channel: the connection for HTTP/1.1, a stream for HTTP/2.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The caller's TLS client identity, or `nil` (no certificate, plaintext, tests without a connection).
    public func peerIdentity() async -> PeerIdentity? {
        await channel.ekey_peerIdentity()
    }

    /// The caller's IP address, for audit events.
    public var clientAddress: String? {
        (channel.parent?.remoteAddress ?? channel.remoteAddress)?.ipAddress
    }
}
