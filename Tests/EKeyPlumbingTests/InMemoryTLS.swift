import NIOCore
import NIOEmbedded
import NIOSSL

@testable import EKeyServer

/// A real TLS 1.3 server and client on two `EmbeddedChannel`s, their bytes carried by hand:
/// handler tests drive handshakes and closes without sockets.
struct InMemoryTLS {
    let serverTLS: TLSConfiguration
    let clientTLS: TLSConfiguration

    /// A server certified by `pki` for `localhost` that asks for (but does not require) a
    /// client certificate from `pki`; the client presents `client`, if any.
    init(pki: DevelopmentPKI, server: DevelopmentPKI.Issued, client: DevelopmentPKI.Issued? = nil) throws {
        let authority = try NIOSSLCertificate(bytes: pki.authority.certificateDER, format: .der)
        var serverTLS = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try Self.certificate(server))], privateKey: .privateKey(try Self.key(server)))
        serverTLS.minimumTLSVersion = .tlsv13
        serverTLS.certificateVerification = .optionalVerification
        serverTLS.trustRoots = .certificates([authority])
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates([authority])
        if let client {
            clientTLS.certificateChain = [.certificate(try Self.certificate(client))]
            clientTLS.privateKey = .privateKey(try Self.key(client))
        }
        self.serverTLS = serverTLS
        self.clientTLS = clientTLS
    }

    static func certificate(_ issued: DevelopmentPKI.Issued) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: issued.certificateDER, format: .der)
    }

    static func key(_ issued: DevelopmentPKI.Issued) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(issued.privateKeyPEM.utf8), format: .pem)
    }

    func serverHandler() throws -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: try NIOSSLContext(configuration: serverTLS))
    }

    /// A connected client channel speaking TLS to `localhost`.
    func clientChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            try NIOSSLClientHandler(context: try NIOSSLContext(configuration: clientTLS), serverHostname: "localhost"))
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        return channel
    }

    /// Connects `server` (its pipeline already built) and hands each side's bytes to the other until neither has more to say.
    static func connect(_ server: EmbeddedChannel, to client: EmbeddedChannel) throws {
        try server.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        try shuttle(client, server)
    }

    /// Hands each side's bytes to the other until neither has more to say.
    static func shuttle(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        for _ in 0..<20 {
            var moved = false
            while client.isActive, server.isActive, let bytes = try client.readOutbound(as: ByteBuffer.self) {
                try server.writeInbound(bytes)
                moved = true
            }
            while client.isActive, server.isActive, let bytes = try server.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
            if !moved { break }
        }
    }
}
