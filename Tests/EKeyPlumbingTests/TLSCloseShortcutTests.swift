import NIOCore
import NIOEmbedded
import NIOSSL
import Testing

@testable import EKeyServer

/// ``TLSCloseShortcut`` around a real `NIOSSLServerHandler` on an `EmbeddedChannel`, after
/// a real TLS 1.3 handshake: a close the server starts ends the connection as soon as the
/// peer has finished sending (its FIN, in either order), and still waits for the peer's
/// `close_notify` while the peer may be sending.
struct TLSCloseShortcutTests {
    let tls: InMemoryTLS
    /// The errors TLS reports upward (a FIN without `close_notify` is an unclean shutdown).
    let errors = ErrorRecorder()

    init() throws {
        let pki = try DevelopmentPKI()
        tls = try InMemoryTLS(pki: pki, server: try pki.issueServer(commonName: "localhost", dnsNames: ["localhost"]))
    }

    /// A server channel with the shortcut around TLS, past its handshake with `client`.
    func connectedServer(_ client: EmbeddedChannel) throws -> EmbeddedChannel {
        let server = EmbeddedChannel()
        try TLSCloseShortcut.addHandlers(around: try tls.serverHandler(), to: server.pipeline.syncOperations)
        try server.pipeline.syncOperations.addHandler(errors)
        try InMemoryTLS.connect(server, to: client)
        return server
    }

    /// What the client reads of everything the server wrote.
    func received(by client: EmbeddedChannel, from server: EmbeddedChannel) throws -> String {
        while let bytes = try server.readOutbound(as: ByteBuffer.self) {
            try? client.writeInbound(bytes)
        }
        var text = ""
        while let plain = try client.readInbound(as: ByteBuffer.self) {
            text += String(buffer: plain)
        }
        return text
    }

    @Test func aCloseAfterThePeersFINEndsTheConnectionAtOnceAfterTheLastBytes() throws {
        let client = try tls.clientChannel()
        let server = try connectedServer(client)
        server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(server.isActive, "the peer's FIN alone does not close: a half-closed peer may still read")
        #expect(errors.errors.contains { if case NIOSSLError.uncleanShutdown = $0 { true } else { false } }, "TLS saw the FIN come without close_notify")
        try server.writeAndFlush(ByteBuffer(string: "last answer")).wait()
        server.close(promise: nil)
        #expect(!server.isActive, "closed without waiting for a close_notify that cannot come")
        #expect(try received(by: client, from: server) == "last answer", "the bytes written before the close were sent first")
    }

    @Test func thePeersFINDuringTheCloseEndsTheWait() throws {
        let client = try tls.clientChannel()
        let server = try connectedServer(client)
        server.close(promise: nil)
        #expect(server.isActive, "TLS waits for the peer's close_notify")
        server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!server.isActive, "the peer finished sending: nothing more can come")
    }

    @Test func aPeerStillSendingKeepsTheCleanTLSShutdown() throws {
        let client = try tls.clientChannel()
        let server = try connectedServer(client)
        server.close(promise: nil)
        #expect(server.isActive, "without the peer's FIN the TLS handler waits for its close_notify")
        // The client answers the server's close_notify with its own: a clean shutdown.
        while let bytes = try server.readOutbound(as: ByteBuffer.self) {
            try client.writeInbound(bytes)
        }
        while let bytes = try client.readOutbound(as: ByteBuffer.self) {
            try server.writeInbound(bytes)
        }
        #expect(!server.isActive, "closed by the clean TLS shutdown")
    }
}

/// Keeps the errors that reach the end of the pipeline.
final class ErrorRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private(set) var errors: [any Error] = []

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }
}
