import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Testing

@testable import EKeyServer

/// ``InlineRequestHandler`` answering from the head alone (``InlineAnswer/immediate(_:_:)``)
/// on an HTTP/1.1 `EmbeddedChannel`: the answer leaves without a task, and the refused
/// request's body never becomes a request of its own.
struct InlineHTTP1AnswerTests {
    /// A plaintext HTTP/1.1 connection whose requests `handler` answers.
    static func connection(_ handler: @escaping InlineHandler) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try sync.addHandler(
            InlineRequestHandler(
                responder: InlineService(handle: handler, serverName: "test", logger: Logger(label: "test")), idleLimit: .seconds(60),
                servesManyRequests: true))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    @Test func aRefusedRequestsBodyIsDroppedAndTheNextRequestIsAnsweredInTurn() throws {
        let seen = NIOLockedValueBox<[String]>([])
        let channel = try Self.connection { head, origin in
            #expect(!origin.overHTTP2)
            seen.withLockedValue { $0.append("\(head.method) \(head.path ?? "")") }
            return .immediate(HTTPResponse(status: .unauthorized), ByteBuffer(string: "refused \(head.path ?? "")"))
        }
        // The first body looks like a request: it must stay body.
        let smuggled = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
        try channel.writeInbound(
            ByteBuffer(
                string: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: \(smuggled.utf8.count)\r\n\r\n\(smuggled)"
                    + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"))
        channel.pipeline.fireChannelReadComplete()
        let text = try Self.written(channel)
        #expect(seen.withLockedValue { $0 } == ["POST /a", "GET /b"], "the handler saw exactly the two requests")
        #expect(text.components(separatedBy: "HTTP/1.1 401").count == 3, "two answers, written without running the loop: \(text)")
        #expect(text.contains("refused /a") && text.contains("refused /b"))
        #expect(text.range(of: "refused /a")!.lowerBound < text.range(of: "refused /b")!.lowerBound, "in order")
        #expect(text.lowercased().contains("content-length: 10"), "the immediate answer carries its length: \(text)")
        #expect(channel.isActive, "the connection stays open for the next request")
        _ = try? channel.finish()
    }

    @Test func connectionCloseIsHonouredAfterAnImmediateAnswer() throws {
        let channel = try Self.connection { _, _ in .immediate(HTTPResponse(status: .forbidden), ByteBuffer(string: "no")) }
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 403"))
        #expect(!channel.isActive, "closed after the answer, as the client asked")
    }
}
