import Crypto
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import Testing

@testable import EKeyServer

/// ``PeerIdentityHandler`` behind a real `NIOSSLServerHandler` on an `EmbeddedChannel`,
/// its TLS 1.3 handshake driven in memory against a client channel: the identity is read
/// from the certificate the handshake validated, once, and the handshake event goes on.
struct PeerIdentityHandlerTests {
    let pki: DevelopmentPKI
    let server: DevelopmentPKI.Issued

    init() throws {
        pki = try DevelopmentPKI()
        server = try pki.issueServer(commonName: "localhost", dnsNames: ["localhost"])
    }

    /// Runs a handshake between a client presenting `client` (or nothing) and a server that
    /// asks for a certificate signed by the test CA; returns the server's handler and the
    /// events that passed it.
    func handshake(presenting client: DevelopmentPKI.Issued?) throws -> (handler: PeerIdentityHandler, events: [String]) {
        let tls = try InMemoryTLS(pki: pki, server: server, client: client)
        let serverChannel = EmbeddedChannel()
        let handler = PeerIdentityHandler()
        let recorder = TLSEventRecorder()
        try serverChannel.pipeline.syncOperations.addHandlers([try tls.serverHandler(), handler, recorder])
        try InMemoryTLS.connect(serverChannel, to: try tls.clientChannel())
        return (handler, recorder.events)
    }

    @Test func theIdentityIsTheClientCertificatesSPIFFEIDAndHash() throws {
        let client = try pki.issueClient(commonName: "checkout", spiffeID: "spiffe://example.org/checkout")
        let (handler, events) = try handshake(presenting: client)
        #expect(events == ["handshake completed"])
        let identity = try #require(handler.identity)
        #expect(identity.identity == "spiffe://example.org/checkout")
        #expect(identity.certificateSHA256 == Array(SHA256.hash(data: client.certificateDER)))
    }

    @Test func aCertificateWithoutSPIFFEIDIsNamedByItsCommonName() throws {
        let client = try pki.issueClient(commonName: "legacy-batch", spiffeID: nil)
        let (handler, _) = try handshake(presenting: client)
        #expect(handler.identity?.identity == "x509:legacy-batch")
    }

    @Test func noClientCertificateLeavesNoIdentity() throws {
        let (handler, events) = try handshake(presenting: nil)
        #expect(events == ["handshake completed"], "the handshake itself succeeded")
        #expect(handler.identity == nil)
    }
}

/// Records the TLS events that reach the end of the pipeline.
final class TLSEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private(set) var events: [String] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            events.append("handshake completed")
        } else {
            events.append("\(event)")
        }
    }
}
