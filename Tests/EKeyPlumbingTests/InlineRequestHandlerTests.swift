import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization
import Testing

@testable import EKeyServer

/// ``InlineRequestHandler`` on a `NIOAsyncTestingChannel` (the responder runs in a task,
/// off the channel's loop, so the channel must take writes from any thread): request in,
/// response out with `Date` and `Server`; pipelined HTTP/1.1 requests answered in order;
/// reading held back while an unread body is over ``InboundBodyStream/pauseAbove``; the
/// idle limit.
struct InlineRequestHandlerTests {
    /// A connected channel serving `respond`, with a counter of the reads the handler lets
    /// through to the socket; `http1` puts NIO's HTTP/1.1 server pipeline (with pipelining
    /// assistance) in front, as the listener does.
    static func connection(
        idleLimit: TimeAmount = .seconds(60), http1: Bool = false, _ respond: @escaping InlineResponder
    ) async throws -> (channel: NIOAsyncTestingChannel, reads: ReadCount) {
        let channel = NIOAsyncTestingChannel()
        let reads = ReadCount()
        try await channel.testingEventLoop.executeInContext {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(ReadCounter(reads))
            if http1 {
                try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
                try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            }
            let service = InlineService(respond: respond, serverName: "test-server", logger: Logger(label: "test"))
            try sync.addHandler(InlineRequestHandler(responder: service, idleLimit: idleLimit, servesManyRequests: true))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).get()
        return (channel, reads)
    }

    static func head(_ path: String, method: HTTPRequest.Method = .get) -> HTTPRequestPart {
        .head(HTTPRequest(method: method, scheme: nil, authority: "localhost", path: path))
    }

    /// Delivers `parts` as one read, as the socket would.
    static func send(_ parts: [HTTPRequestPart], to channel: NIOAsyncTestingChannel) async throws {
        for part in parts { try await channel.writeInbound(part) }
        channel.pipeline.fireChannelReadComplete()
    }

    /// The next response: its head and its body, up to its end.
    static func response(from channel: NIOAsyncTestingChannel) async throws -> (head: HTTPResponse, body: String) {
        guard case .head(let head) = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) else {
            throw HandlerTestFailure(description: "the response did not start with its head")
        }
        var body = ""
        while true {
            switch try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) {
            case .body(let buffer): body += String(buffer: buffer)
            case .end: return (head, body)
            case .head: throw HandlerTestFailure(description: "a second head")
            }
        }
    }

    /// Waits, a few milliseconds at a time, until `condition` holds or `limit` passed.
    static func eventually(within limit: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return try await condition()
    }

    @Test func aRequestIsAnsweredWithTheResponderBodyDateAndServer() async throws {
        let (channel, _) = try await Self.connection { request, origin in
            #expect(!origin.overHTTP2)
            #expect(origin.peer == nil, "no TLS, no identity")
            return Response(status: .created, body: .init(byteBuffer: ByteBuffer(string: "\(request.method) \(request.uri.path)")))
        }
        try await Self.send([Self.head("/a", method: .post), .end(nil)], to: channel)
        let (head, body) = try await Self.response(from: channel)
        #expect(head.status == .created)
        #expect(body == "POST /a")
        #expect(head.headerFields[.server] == "test-server")
        #expect(head.headerFields[.date]?.hasSuffix(" GMT") == true)
        #expect(channel.isActive, "an HTTP/1.1 connection waits for the next request")
    }

    @Test func aResponderThatThrowsGivesAnEmpty500() async throws {
        let (channel, _) = try await Self.connection { _, _ in throw HandlerTestFailure(description: "broken") }
        try await Self.send([Self.head("/a"), .end(nil)], to: channel)
        let (head, body) = try await Self.response(from: channel)
        #expect(head.status == .internalServerError)
        #expect(body == "")
        #expect(head.headerFields[.server] == "test-server")
    }

    @Test func connectionCloseClosesAfterTheResponse() async throws {
        let (channel, _) = try await Self.connection { _, _ in Response(status: .noContent) }
        var head = HTTPRequest(method: .get, scheme: nil, authority: "localhost", path: "/a")
        head.headerFields[.connection] = "close"
        try await Self.send([.head(head), .end(nil)], to: channel)
        #expect(try await Self.response(from: channel).head.status == .noContent)
        #expect(try await Self.eventually { !channel.isActive })
    }

    /// Two requests in one read: the second reaches the responder only once the first is
    /// answered, and the answers go out in the order asked.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let seen = Mutex<[String]>([])
        let (channel, _) = try await Self.connection(http1: true) { request, _ in
            let path = request.uri.path
            seen.withLock { $0.append(path) }
            if path == "/slow" {
                for await _ in gate.stream { break }
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "answer to \(path)")))
        }
        try await channel.writeInbound(ByteBuffer(string: "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"))
        channel.pipeline.fireChannelReadComplete()
        #expect(try await Self.eventually { seen.withLock { $0 } == ["/slow"] })
        try await Task.sleep(for: .milliseconds(50))
        #expect(seen.withLock { $0 } == ["/slow"], "the second request waits for the first answer")
        #expect(try await channel.readOutbound(as: IOData.self) == nil, "nothing is answered yet")

        gate.continuation.yield()
        var written = ""
        #expect(try await Self.eventually {
            while let data = try await channel.readOutbound(as: IOData.self) {
                guard case .byteBuffer(let buffer) = data else { throw HandlerTestFailure(description: "a file region") }
                written += String(buffer: buffer)
            }
            return written.contains("answer to /fast")
        })
        let slow = try #require(written.range(of: "answer to /slow"))
        let fast = try #require(written.range(of: "answer to /fast"))
        #expect(slow.upperBound <= fast.lowerBound, "in the order asked: \(written)")
        #expect(written.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "two responses: \(written)")
        #expect(seen.withLock { $0 } == ["/slow", "/fast"])
    }

    /// A body nobody reads stops the reading of the socket once more than
    /// ``InboundBodyStream/pauseAbove`` is buffered; reading the body resumes it.
    @Test func anUnreadBodyHoldsBackReadingUntilTheResponderReadsIt() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let received = AsyncStream<Int>.makeStream()
        let (channel, reads) = try await Self.connection { request, _ in
            for await _ in gate.stream { break }
            var total = 0
            for try await part in request.body { total += part.readableBytes }
            received.continuation.yield(total)
            return Response(status: .ok)
        }
        let chunk = ByteBuffer(repeating: 0x61, count: 16 * 1024)
        let chunks = InboundBodyStream.pauseAbove / chunk.readableBytes + 2
        try await Self.send([Self.head("/upload", method: .post)], to: channel)
        let before = reads.value
        channel.read()
        #expect(try await Self.eventually { reads.value == before + 1 }, "below the limit, reads go through")

        try await Self.send(Array(repeating: .body(chunk), count: chunks), to: channel)
        let held = reads.value
        channel.read()
        await channel.testingEventLoop.run()
        try await Task.sleep(for: .milliseconds(20))
        #expect(reads.value == held, "over the limit, the read is held back")

        gate.continuation.yield()
        #expect(try await Self.eventually { reads.value == held + 1 }, "the held-back read goes out once the body is read down")
        try await Self.send([.end(nil)], to: channel)
        var totals = received.stream.makeAsyncIterator()
        #expect(await totals.next() == chunks * chunk.readableBytes, "every byte reached the responder")
        #expect(try await Self.response(from: channel).head.status == .ok)
    }

    /// The idle limit closes a connection with no request, and a request whose body stopped
    /// arriving; it leaves alone a request waiting for its response. The limit is measured
    /// on the wall clock: the test waits it out, then runs the loop's timers.
    @Test func theIdleLimitClosesIdleConnectionsAndStalledBodiesOnly() async throws {
        let limit = TimeAmount.milliseconds(100)
        let (idle, _) = try await Self.connection(idleLimit: limit) { _, _ in Response(status: .ok) }
        let gate = AsyncStream<Void>.makeStream()
        let (waiting, _) = try await Self.connection(idleLimit: limit) { _, _ in
            for await _ in gate.stream { break }
            return Response(status: .ok)
        }
        try await Self.send([Self.head("/a"), .end(nil)], to: waiting)
        let (stalled, _) = try await Self.connection(idleLimit: limit) { request, _ in
            for try await _ in request.body {}
            return Response(status: .ok)
        }
        try await Self.send([Self.head("/upload", method: .post), .body(ByteBuffer(string: "part"))], to: stalled)

        try await Task.sleep(for: .milliseconds(150))
        for channel in [idle, waiting, stalled] {
            await channel.testingEventLoop.advanceTime(to: .now())
        }
        #expect(!idle.isActive, "no request for the idle limit")
        #expect(!stalled.isActive, "a body that stopped arriving")
        #expect(waiting.isActive, "a request waiting for its response is the responder's to time out")
        gate.continuation.yield()
        #expect(try await Self.response(from: waiting).head.status == .ok)
    }
}

struct HandlerTestFailure: Error, CustomStringConvertible {
    let description: String
}

/// How many reads reached the socket end of the pipeline.
final class ReadCount: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}

/// Counts the reads that pass it on their way to the socket.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any

    private let reads: ReadCount

    init(_ reads: ReadCount) {
        self.reads = reads
    }

    func read(context: ChannelHandlerContext) {
        reads.increment()
        context.read()
    }
}
