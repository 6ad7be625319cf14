import HTTPTypes
public import Hummingbird
import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request: called once per request with where it came from. It returns the
/// response, its body possibly still streaming; thrown errors become an empty 500.
public typealias InlineResponder = @Sendable (_ request: Request, _ origin: InlineRequestOrigin) async throws -> Response

/// The connection a request came on, as its listener knows it.
public struct InlineRequestOrigin: Sendable {
    public let connection: any Channel
    /// Whether it came on a stream of an HTTP/2 connection.
    public let overHTTP2: Bool
    /// The TLS client identity, read once when the connection's protocol was chosen (after
    /// the handshake); `nil` without a client certificate or TLS.
    public let peer: PeerIdentity?
    /// The request's body as far as it has arrived with the head (HTTP/2 delivers a small
    /// body in the same read); `nil` when the listener reads the body later.
    let body: InboundBodyStream?

    init(connection: any Channel, overHTTP2: Bool, peer: PeerIdentity?, body: InboundBodyStream? = nil) {
        self.connection = connection
        self.overHTTP2 = overHTTP2
        self.peer = peer
        self.body = body
    }

    /// The client's IP address, as audit events name it (`client`).
    public var clientAddress: String? {
        connection.remoteAddress?.ipAddress
    }

    /// The whole request body when it arrived with the head and is at most `limit` bytes,
    /// so the request can be answered on the event loop; `nil` otherwise (then the body is
    /// read in the request's task). The body stays readable either way.
    public func bodyIfArrived(upTo limit: Int) -> ByteBuffer? {
        body?.completeBody(upTo: limit)
    }

    /// The identity of `connection`'s ``PeerIdentityHandler``; call on its event loop.
    static func peerIdentity(of connection: any Channel) -> PeerIdentity? {
        (try? connection.pipeline.syncOperations.handler(type: PeerIdentityHandler.self))?.identity
    }
}

/// How a listener answers a request, decided on the connection's event loop when the
/// request's head has arrived.
public enum InlineAnswer: Sendable {
    /// The whole response, known from the head alone (a refusal): written at once, with
    /// no task; the request's body is not read.
    case immediate(HTTPResponse, ByteBuffer)
    /// The response comes from this closure, run in a task; it may read the body.
    case deferred(@Sendable (Request) async throws -> Response)
    /// The answer is decided on the event loop once the whole body has arrived, with the
    /// body; with `nil` when it is larger than `upTo` bytes or this listener does not hold
    /// bodies back (HTTP/1.1), and then the closure answers ``deferred(_:)`` (which reads
    /// the body in its task). The closure must not answer `afterBody` itself.
    case afterBody(upTo: Int, @Sendable (ByteBuffer?) -> InlineAnswer)

    /// This answer with any wait for the body resolved: `body`'s whole content when it has
    /// ended within the limit, else `nil`.
    func decided(with body: InboundBodyStream?) -> InlineAnswer {
        guard case .afterBody(let limit, let decide) = self else { return self }
        switch decide(body?.completeBody(upTo: limit)) {
        case .afterBody:
            return .immediate(HTTPResponse(status: .internalServerError), ByteBuffer())
        case let answer:
            return answer
        }
    }
}

/// Decides how to answer a request from its head; called on the connection's event loop,
/// so it must not block.
public typealias InlineHandler = @Sendable (_ head: HTTPRequest, _ origin: InlineRequestOrigin) -> InlineAnswer

/// A listener's handler and what it adds to every response.
struct InlineService: Sendable {
    let handle: InlineHandler
    let serverName: String
    let logger: Logger

    init(handle: @escaping InlineHandler, serverName: String, logger: Logger) {
        self.handle = handle
        self.serverName = serverName
        self.logger = logger
    }

    /// A service whose every request `respond` answers in a task.
    init(respond: @escaping InlineResponder, serverName: String, logger: Logger) {
        self.init(handle: Self.inTask(respond), serverName: serverName, logger: logger)
    }

    /// The handler that answers every request with `respond`, in a task.
    static func inTask(_ respond: @escaping InlineResponder) -> InlineHandler {
        { _, origin in .deferred { request in try await respond(request, origin) } }
    }

    /// The answer of `respond` (an empty 500 when it throws) with `Date` and `Server`.
    func answer(_ request: Request, by respond: @Sendable (Request) async throws -> Response) async -> Response {
        var response: Response
        do {
            response = try await respond(request)
        } catch {
            logger.debug("responder failed", metadata: ["error": "\(error)"])
            response = Response(status: .internalServerError)
        }
        response.headers[.date] = HTTPDate.now()
        response.headers[.server] = serverName
        return response
    }

    /// An immediate answer's head with `Date`, `Server` and the body's `Content-Length`.
    func stamped(_ head: HTTPResponse, length: Int) -> HTTPResponse {
        var head = head
        head.headerFields[.date] = HTTPDate.now()
        head.headerFields[.server] = serverName
        head.headerFields[.contentLength] = String(length)
        return head
    }
}

/// Serves HTTP/1.1 requests straight from the channel pipeline, one after the other on a
/// connection (NIO's pipelining handler holds back the next); HTTP/2 connections are
/// served by ``HTTP2ServerConnection``.
///
/// The head starts the responder at once, in a task on the channel's event loop; the body
/// follows through an ``InboundBodyStream`` with back-pressure, and the response is written
/// straight to the channel. This replaces the async channel bridge and request loop that
/// Hummingbird's server runs per stream.
///
/// Idle limit: a request whose body stops arriving for `idleLimit`, or an HTTP/1.1
/// connection without a request for that long, is closed; a request waiting for its
/// response is left to the responder's own timeouts. The timer runs only while one of
/// those can happen, so a request that arrives whole in one read never schedules one.
final class InlineRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let responder: InlineService
    private let logger: Logger
    private let idleLimit: TimeAmount
    /// An HTTP/1.1 connection, which waits for further requests; else an HTTP/2 stream.
    private let servesManyRequests: Bool
    private var idleTimer: Scheduled<Void>?
    private var lastRead = NIODeadline.now()
    private var context: ChannelHandlerContext?
    private var peer: PeerIdentity?
    /// The body of the request being read, until it ends or its response is complete.
    private var body: InboundBodyStream?
    private var requestEnded = true
    private var responding = false
    private var closeAfterResponse = false
    private var readHeldBack = false
    /// The head of the current request's response went out.
    private var responseStarted = false
    /// The connection is being closed after a broken request: the responder's writes are dropped.
    private var discardingResponses = false

    init(responder: InlineService, idleLimit: TimeAmount, servesManyRequests: Bool) {
        self.responder = responder
        self.logger = responder.logger
        self.idleLimit = idleLimit
        self.servesManyRequests = servesManyRequests
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = InlineRequestOrigin.peerIdentity(of: context.channel)
        updateIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
    }

    /// Whether the idle limit applies now: a request body still to come, or an idle HTTP/1.1 connection.
    private var mayGoIdle: Bool {
        !requestEnded || (servesManyRequests && !responding)
    }

    private func updateIdleTimer() {
        guard mayGoIdle else {
            idleTimer?.cancel()
            idleTimer = nil
            return
        }
        guard idleTimer == nil, let context else { return }
        scheduleIdleCheck(at: lastRead + idleLimit, context: context)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            loopBound.value.idleCheck()
        }
    }

    private func idleCheck() {
        idleTimer = nil
        guard mayGoIdle, let context else { return }
        let deadline = lastRead + idleLimit
        if deadline > .now() {
            scheduleIdleCheck(at: deadline, context: context)
            return
        }
        body?.finish(ChannelError.eof)
        body = nil
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        updateIdleTimer()
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if idleTimer != nil { lastRead = .now() }
        switch unwrapInboundIn(data) {
        case .head(let head):
            start(head, context: context)
        case .body(let buffer):
            body?.append(buffer)
        case .end:
            requestEnded = true
            body?.finish()
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        body?.finish(ChannelError.eof)
        body = nil
        context.fireChannelInactive()
    }

    /// An error ends the connection. When the request being answered arrived whole, what
    /// broke is what followed it: its response still goes out, then the connection closes.
    /// Otherwise the request itself is broken (an HTTP/1.1 parse error may come after its
    /// head was passed on, in the middle of its body): the responder's response is dropped,
    /// and when none of it was written a 400 goes out instead, so one request never gets
    /// two responses.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if responding, requestEnded {
            closeAfterResponse = true
            return
        }
        body?.finish(error)
        body = nil
        guard !discardingResponses else { return }
        discardingResponses = true
        if servesManyRequests, error is HTTPParserError, !responseStarted {
            let text = #"{"error":"invalid_request","error_description":"the request is not valid HTTP/1.1 (\#(error)); fix the client's framing"}"#
            let payload = ByteBuffer(string: text)
            let head = HTTPResponse(
                status: .badRequest,
                headerFields: [.contentType: "application/json", .contentLength: String(payload.readableBytes), .connection: "close"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(payload)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !discardingResponses else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if case .head = unwrapOutboundIn(data) { responseStarted = true }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if let body, body.isPaused {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    private func start(_ head: HTTPRequest, context: ChannelHandlerContext) {
        lastRead = .now()
        requestEnded = false
        responding = true
        responseStarted = false
        closeAfterResponse = head.headerFields[.connection].map { $0.lowercased().contains("close") } ?? false
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let channel = context.channel
        let origin = InlineRequestOrigin(connection: channel, overHTTP2: false, peer: peer)
        let respond: @Sendable (Request) async throws -> Response
        switch responder.handle(head, origin).decided(with: nil) {
        case .afterBody:
            preconditionFailure("InlineAnswer.decided(with:) never answers afterBody")
        case .immediate(let response, let payload):
            channel.write(HTTPResponsePart.head(responder.stamped(response, length: payload.readableBytes)), promise: nil)
            channel.write(HTTPResponsePart.body(payload), promise: nil)
            channel.writeAndFlush(HTTPResponsePart.end(nil)).whenComplete { result in
                if case .failure = result { channel.close(promise: nil) }
                loopBound.value.responseWritten()
            }
            return
        case .deferred(let deferred):
            respond = deferred
        }
        let stream = InboundBodyStream {
            eventLoop.execute { loopBound.value.resumeReading() }
        }
        body = stream
        let request = Request(head: head, body: RequestBody(asyncSequence: stream))
        let responder = self.responder
        Task {
            let response = await responder.answer(request, by: respond)
            let end = ResponseEnd()
            let writer = ChannelResponseBodyWriter(channel: channel, head: response.head, length: response.body.contentLength, end: end)
            try? await response.body.write(writer)
            // The task ends here; the connection moves on once the response's last write is
            // done. A body that failed before its end never wrote one: the channel is closed.
            if let written = end.written {
                written.whenComplete { result in
                    if case .failure = result { channel.close(promise: nil) }
                    loopBound.value.responseWritten()
                }
            } else {
                channel.close(promise: nil)
                eventLoop.execute { loopBound.value.responseWritten() }
            }
        }
    }

    private func resumeReading() {
        guard readHeldBack, let context, !(body?.isPaused ?? false) else { return }
        readHeldBack = false
        context.read()
    }

    /// The response is on its way; a request body still arriving is dropped from now on.
    private func responseWritten() {
        responding = false
        if !requestEnded {
            body?.finish(ResponseCompleteError())
            body = nil
        }
        if readHeldBack, let context {
            readHeldBack = false
            context.read()
        }
        if closeAfterResponse {
            context?.close(promise: nil)
        } else {
            lastRead = .now()
            updateIdleTimer()
        }
    }
}

@available(*, unavailable)
extension InlineRequestHandler: Sendable {}

/// The responder finished while the client was still sending its request body.
struct ResponseCompleteError: Error, CustomStringConvertible {
    var description: String { "the response was sent before the request body ended" }
}

/// The last write of a response, once issued: its completion hands the connection back.
final class ResponseEnd {
    var written: EventLoopFuture<Void>?
}

/// Writes a response's body to the channel from the responder's task: a body of known
/// length goes out with its head and end in one hop to the event loop, flushed once; a
/// streamed body is flushed part by part and waits for the channel to drain whenever it
/// stops being writable. The end is written without waiting for it: its future goes to
/// ``ResponseEnd``.
struct ChannelResponseBodyWriter: ResponseBodyWriter {
    let channel: any Channel
    var head: HTTPResponse?
    var remaining: Int?
    /// The part that completed a body of known length, written with the end.
    var held: ByteBuffer?
    let end: ResponseEnd

    init(channel: any Channel, head: HTTPResponse, length: Int?, end: ResponseEnd) {
        self.channel = channel
        self.head = head
        self.remaining = length
        self.end = end
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        if let remaining {
            self.remaining = remaining - buffer.readableBytes
        }
        if remaining == 0, held == nil {
            held = buffer
            return
        }
        let (channel, head, held) = (self.channel, self.head, self.held)
        self.head = nil
        self.held = nil
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute {
            if let head { channel.write(HTTPResponsePart.head(head), promise: nil) }
            if let held { channel.write(HTTPResponsePart.body(held), promise: nil) }
            channel.writeAndFlush(HTTPResponsePart.body(buffer), promise: written)
        }
        if !channel.isWritable {
            try await written.futureResult.get()
        }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let (channel, head, held) = (self.channel, self.head, self.held)
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute {
            if let head { channel.write(HTTPResponsePart.head(head), promise: nil) }
            if let held { channel.write(HTTPResponsePart.body(held), promise: nil) }
            channel.writeAndFlush(HTTPResponsePart.end(trailingHeaders), promise: written)
        }
        end.written = written.futureResult
    }
}
