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

    static func certificate(_ issued: DevelopmentPKI.Issued) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: issued.certificateDER, format: .der)
    }

    static func key(_ issued: DevelopmentPKI.Issued) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(issued.privateKeyPEM.utf8), format: .pem)
    }

    /// Runs a handshake between a client presenting `client` (or nothing) and a server that
    /// asks for a certificate signed by the test CA; returns the server's handler and the
    /// events that passed it.
    func handshake(presenting client: DevelopmentPKI.Issued?) throws -> (handler: PeerIdentityHandler, events: [String]) {
        var serverTLS = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try Self.certificate(server))], privateKey: .privateKey(try Self.key(server)))
        serverTLS.minimumTLSVersion = .tlsv13
        serverTLS.certificateVerification = .optionalVerification
        serverTLS.trustRoots = .certificates([try NIOSSLCertificate(bytes: pki.authority.certificateDER, format: .der)])
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates([try NIOSSLCertificate(bytes: pki.authority.certificateDER, format: .der)])
        if let client {
            clientTLS.certificateChain = [.certificate(try Self.certificate(client))]
            clientTLS.privateKey = .privateKey(try Self.key(client))
        }

        let serverChannel = EmbeddedChannel()
        let handler = PeerIdentityHandler()
        let recorder = TLSEventRecorder()
        try serverChannel.pipeline.syncOperations.addHandlers([
            NIOSSLServerHandler(context: try NIOSSLContext(configuration: serverTLS)), handler, recorder,
        ])
        let clientChannel = EmbeddedChannel()
        try clientChannel.pipeline.syncOperations.addHandler(
            try NIOSSLClientHandler(context: try NIOSSLContext(configuration: clientTLS), serverHostname: "localhost"))
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 443)
        try serverChannel.connect(to: address).wait()
        try clientChannel.connect(to: address).wait()

        // Hand each side's bytes to the other until neither has more to say.
        for _ in 0..<20 {
            var moved = false
            while let bytes = try clientChannel.readOutbound(as: ByteBuffer.self) {
                try serverChannel.writeInbound(bytes)
                moved = true
            }
            while let bytes = try serverChannel.readOutbound(as: ByteBuffer.self) {
                try clientChannel.writeInbound(bytes)
                moved = true
            }
            if !moved { break }
        }
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
