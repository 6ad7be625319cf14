import AsyncAlgorithms
import EKeyConfig
import EKeyProtocol
import Foundation
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2
import NIOPosix

/// An `h2c://` upstream: HTTP/2 with prior knowledge over plain TCP (RFC 9113 §3.3), which
/// async-http-client cannot speak (docs/spec/gateway.md step 6).
///
/// As many shared connections as the host has cores, used in turn, each multiplexing one
/// stream per forwarded request. A connection is opened on first use, and replaced once it
/// closes, the upstream sends GOAWAY, or a connection error ends it. Timeouts follow the other upstreams: `connect` for the TCP
/// connection, `first_byte` from the start of the call to the response head, `idle`
/// between reads of the response body.
final class H2CUpstream: Sendable {
    /// The stream's view: HTTP request parts out, response parts in.
    typealias Stream = NIOAsyncChannel<HTTPResponsePart, HTTPRequestPart>

    struct Connection: Sendable {
        let channel: any Channel
        let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
        /// The last stream ID of the upstream's GOAWAY, once it sent one: streams above it
        /// were not processed.
        let goAwayLastStreamID: NIOLockedValueBox<HTTP2StreamID?>
    }

    private enum Slot: Sendable {
        case empty
        case connecting(Task<Connection, any Error>)
        case ready(Connection)
    }

    /// Host, port, `Host`/`:authority` value and base path of the upstream.
    let address: UpstreamAddress
    private let timeouts: TimeoutsConfig
    private let logger: Logger
    private let slots: [NIOLockedValueBox<Slot>]
    private let next = NIOLockedValueBox(0)

    /// Prepares (but does not open) the connections to `upstream`, an `h2c://` URL.
    init(upstream: URL, timeouts: TimeoutsConfig, logger: Logger, connections: Int = System.coreCount) throws {
        address = try UpstreamAddress(upstream)
        self.timeouts = timeouts
        self.logger = logger
        slots = (0..<max(1, connections)).map { _ in NIOLockedValueBox(.empty) }
    }

    /// Closes every open connection.
    func shutdown() async {
        for slot in slots {
            let state = slot.withLockedValue { state in
                defer { state = .empty }
                return state
            }
            switch state {
            case .ready(let connection): try? await connection.channel.close()
            case .connecting(let task): (try? await task.value).map { $0.channel.close(promise: nil) }
            case .empty: break
            }
        }
    }

    /// Sends `head` and `body` on a new stream and waits for the response head. The
    /// response body streams on; dropping it before its end resets the upstream stream.
    ///
    /// A request the upstream provably did not process (no stream could be opened, the
    /// stream was refused with `REFUSED_STREAM`, or it fell above a GOAWAY's last stream
    /// ID) is sent again, up to ``attempts`` times in all, when its body can be replayed
    /// (none, or read whole). RFC 9113 §8.7 allows this for every method.
    func exchange(head: HTTPRequest, body: UpstreamRequestBody) async throws -> (HTTPResponse, H2CResponseBody.Contents) {
        var attempt = 1
        while true {
            do {
                return try await exchangeOnce(head: head, body: body)
            } catch where attempt < Self.attempts && body.isReplayable && Self.notProcessed(error) && !Self.timedOut(error) && !Task.isCancelled {
                attempt += 1
            }
        }
    }

    /// Resets and stream errors allowed from an upstream per 30 s (NIOHTTP2's default is 200).
    static let upstreamResetAllowance = 1_000_000

    /// How many times a request the upstream did not process is tried in all.
    static let attempts = 3

    /// Whether a deadline ended the attempt (a stream still waiting for a free slot on the
    /// connection times out unsent): sending again would only wait again.
    static func timedOut(_ error: any Error) -> Bool {
        switch error {
        case let never as UpstreamNeverSent: never.underlying is UpstreamTimeout
        case let failed as H2CStreamFailed: failed.underlying is UpstreamTimeout
        default: false
        }
    }

    /// Whether `error` proves that the upstream did not process the request.
    static func notProcessed(_ error: any Error) -> Bool {
        switch error {
        case is H2CStreamNotOpened, is UpstreamNeverSent, is H2CDroppedByGoAway:
            return true
        case let failed as H2CStreamFailed:
            return (failed.underlying as? NIOHTTP2Errors.StreamClosed)?.errorCode == .refusedStream
        default:
            return false
        }
    }

    private func exchangeOnce(head: HTTPRequest, body: UpstreamRequestBody) async throws -> (HTTPResponse, H2CResponseBody.Contents) {
        let (stream, connection) = try await openStream()
        let exchange = H2CExchange(eventLoop: stream.channel.eventLoop)
        let task = Task { await exchange.run(stream: stream, head: head, body: body) }
        let start: H2CExchange.Start
        do {
            start = try await withTaskCancellationHandler {
                try await exchange.head.futureResult.get()
            } onCancel: {
                task.cancel()
            }
        } catch {
            // A stream that never got an ID never sent its HEADERS. NIOHTTP2 closes the
            // streams a GOAWAY drops with CANCEL, like any reset; the stream ID against the
            // GOAWAY's last stream ID tells them apart.
            guard let streamID = try? await stream.channel.getOption(HTTP2StreamChannelOptions.streamID).get() else {
                throw UpstreamNeverSent(underlying: error)
            }
            let goAwayLastStreamID = connection.goAwayLastStreamID.withLockedValue { $0 }
            if let last = goAwayLastStreamID, streamID > last {
                throw H2CDroppedByGoAway(underlying: error)
            }
            throw H2CStreamFailed(streamID: streamID, goAwayLastStreamID: goAwayLastStreamID, underlying: error)
        }
        if let whole = start.wholeBody {
            return (start.head, .whole(whole))
        }
        return (start.head, .streaming(H2CResponseBody(chunks: exchange.body, exchange: ExchangeCancellation(task: task))))
    }

    /// A fresh stream on a live connection; fails (nothing sent yet) when none can be made.
    private func openStream() async throws -> (Stream, Connection) {
        let index = next.withLockedValue { value in
            defer { value = (value + 1) % slots.count }
            return value
        }
        let connection = try await connection(at: index)
        let timeouts = self.timeouts
        do {
            let stream = try await connection.multiplexer.openStream { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        HTTP2FramePayloadToHTTPClientCodec(),
                        UpstreamTimeoutHandler(firstByte: TimeAmount(timeouts.firstByte), idle: TimeAmount(timeouts.idle)),
                    ])
                    return try Stream(wrappingChannelSynchronously: channel)
                }
            }
            return (stream, connection)
        } catch {
            retire(index, connection.channel)
            throw H2CStreamNotOpened(underlying: error)
        }
    }

    private func connection(at index: Int) async throws -> Connection {
        enum Pending {
            case ready(Connection)
            case waiting(Task<Connection, any Error>)
        }
        let pending: Pending = slots[index].withLockedValue { state in
            switch state {
            case .ready(let connection) where connection.channel.isActive:
                return .ready(connection)
            case .connecting(let task):
                return .waiting(task)
            case .ready, .empty:
                let task = Task { try await self.connect(slot: index) }
                state = .connecting(task)
                return .waiting(task)
            }
        }
        switch pending {
        case .ready(let connection): return connection
        case .waiting(let task): return try await task.value
        }
    }

    private func connect(slot index: Int) async throws -> Connection {
        do {
            let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(TimeAmount(timeouts.connect))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var configuration = NIOHTTP2Handler.Configuration()
                        configuration.connection.initialSettings = nioDefaultSettings + [HTTP2Setting(parameter: .enablePush, value: 0)]
                        // NIOHTTP2's rapid-reset defences (200 resets or stream errors per 30 s)
                        // are for servers. An upstream legitimately resets every stream it
                        // answered before reading the body (RST_STREAM NO_ERROR, RFC 9113
                        // §8.1; nginx `return` does), which tripped them after 200 requests.
                        configuration.stream.streamResetFrameRateLimit.maximumCount = Self.upstreamResetAllowance
                        configuration.stream.streamErrorRateLimit.maximumCount = Self.upstreamResetAllowance
                        configuration.connection.maximumConnectionGlitches = Self.upstreamResetAllowance
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                            mode: .client, configuration: configuration, streamInitializer: { $0.close() })
                        let goAwayLastStreamID = NIOLockedValueBox<HTTP2StreamID?>(nil)
                        let upstream = self.address.authority
                        let logger = self.logger
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionWatcher(
                                onGoAway: { [weak self] lastStreamID in
                                    goAwayLastStreamID.withLockedValue { $0 = lastStreamID }
                                    self?.retire(index, channel)
                                },
                                onError: { [weak self] error in
                                    // A connection error leaves the connection unusable: close it,
                                    // which ends its streams, and open a new one for the next call.
                                    logger.notice(
                                        "h2c upstream connection failed; closing it", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                                    self?.retire(index, channel)
                                    channel.close(promise: nil)
                                }))
                        return Connection(channel: channel, multiplexer: multiplexer, goAwayLastStreamID: goAwayLastStreamID)
                    }
                }
            slots[index].withLockedValue { $0 = .ready(connection) }
            connection.channel.closeFuture.whenComplete { [weak self] _ in self?.retire(index, connection.channel) }
            return connection
        } catch {
            slots[index].withLockedValue { $0 = .empty }
            throw UpstreamConnectFailed(underlying: error)
        }
    }

    /// Forgets `channel` if it is still the slot's connection: the next call opens a new one.
    /// Streams already running on it finish (after GOAWAY) or fail (after a close).
    private func retire(_ index: Int, _ channel: any Channel) {
        slots[index].withLockedValue { state in
            if case .ready(let connection) = state, connection.channel === channel {
                state = .empty
            }
        }
    }
}

/// The request body as the forwarder hands it to an upstream client.
enum UpstreamRequestBody: Sendable {
    case none
    /// A small body read whole.
    case bytes(ByteBuffer)
    /// A body streamed from the client through ``RequestBodyRelay``, with its length when
    /// the client declared one (already checked by the downstream decoder).
    case stream(AsyncThrowingChannel<ByteBuffer, any Error>, length: Int64?)

    /// Whether the body can be sent again (a streamed body is consumed as it is sent).
    var isReplayable: Bool {
        if case .stream = self { return false }
        return true
    }
}

/// The connection was there but no stream could be opened on it: nothing was sent.
struct H2CStreamNotOpened: Error {
    let underlying: any Error
}

/// The stream failed after its HEADERS were sent, before the response head.
struct H2CStreamFailed: Error, CustomStringConvertible {
    let streamID: HTTP2StreamID
    let goAwayLastStreamID: HTTP2StreamID?
    let underlying: any Error
    var description: String {
        "\(underlying) (stream \(streamID)" + (goAwayLastStreamID.map { ", after a GOAWAY with last stream \($0))" } ?? ")")
    }
}

/// The stream was above the last stream ID of the upstream's GOAWAY: not processed.
struct H2CDroppedByGoAway: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "the upstream's GOAWAY dropped the stream unprocessed (\(underlying))" }
}

/// The upstream's response did not start with a head, or the stream ended first.
struct H2CMalformedResponse: Error, CustomStringConvertible {
    let description: String
}

/// One request/response exchange on one stream: writes the request while reading the
/// response, hands the head over through ``head`` and the body chunks through ``body``.
final class H2CExchange: Sendable {
    /// The response head, with the whole body when it was small enough to collect.
    struct Start: Sendable {
        let head: HTTPResponse
        let wholeBody: ByteBuffer?
    }

    let head: EventLoopPromise<Start>
    let body = AsyncThrowingChannel<ByteBuffer, any Error>()
    private let headDelivered = NIOLockedValueBox(false)

    /// Request bodies up to this size are written before the response is read, without a
    /// writer task (any upstream's initial flow-control window takes them at once).
    static let inlineRequestLimit = 16 * 1024
    /// Responses with a `content-length` up to this size are collected and handed over
    /// whole, with the head, when the request was written inline.
    static let wholeResponseLimit = 64 * 1024

    init(eventLoop: any EventLoop) {
        head = eventLoop.makePromise()
    }

    private enum Side {
        /// The whole request went out.
        case requestSent
        /// Writing failed on the stream's side; the reader tells whether a response came.
        case requestNotSent
        /// The whole response came in.
        case responseRead
    }

    /// The client's request body broke: the upstream must not wait for the rest of it.
    private struct ClientBodyFailed: Error {
        let underlying: any Error
    }

    func run(stream: H2CUpstream.Stream, head request: HTTPRequest, body requestBody: UpstreamRequestBody) async {
        do {
            try await stream.executeThenClose { inbound, outbound in
                // A write can fail because the upstream answered early and reset the stream
                // (RST_STREAM NO_ERROR, RFC 9113 §8.1): the response it sent still counts.
                if Self.writesInline(requestBody) {
                    var writeError: (any Error)?
                    do {
                        try await Self.send(request, requestBody, to: outbound)
                    } catch {
                        writeError = error
                    }
                    do {
                        try await self.receive(inbound, collectingUpTo: Self.wholeResponseLimit)
                    } catch {
                        throw writeError ?? error
                    }
                    return
                }
                try await withThrowingTaskGroup(of: Side.self) { group in
                    group.addTask {
                        do {
                            try await Self.send(request, requestBody, to: outbound)
                            return .requestSent
                        } catch let error as ClientBodyFailed {
                            throw error.underlying
                        } catch {
                            return .requestNotSent
                        }
                    }
                    group.addTask {
                        try await self.receive(inbound, collectingUpTo: nil)
                        return .responseRead
                    }
                    // The response may end before the request body has all been sent (the
                    // upstream answered early): stop sending then, the stream is closed.
                    while let side = try await group.next() {
                        if side == .responseRead {
                            group.cancelAll()
                            break
                        }
                    }
                }
            }
        } catch {
            fail(error)
        }
    }

    private static func writesInline(_ body: UpstreamRequestBody) -> Bool {
        switch body {
        case .none: true
        case .bytes(let bytes): bytes.readableBytes <= inlineRequestLimit
        case .stream: false
        }
    }

    private static func send(
        _ request: HTTPRequest, _ body: UpstreamRequestBody, to outbound: NIOAsyncChannelOutboundWriter<HTTPRequestPart>
    ) async throws {
        switch body {
        case .none:
            try await outbound.write(contentsOf: [.head(request), .end(nil)])
        case .bytes(let bytes):
            try await outbound.write(contentsOf: [.head(request), .body(bytes), .end(nil)])
        case .stream(let chunks, _):
            try await outbound.write(.head(request))
            var iterator = chunks.makeAsyncIterator()
            while true {
                let next: ByteBuffer?
                do {
                    next = try await iterator.next()
                } catch {
                    throw ClientBodyFailed(underlying: error)
                }
                guard let chunk = next else { break }
                try await outbound.write(.body(chunk))
            }
            // A cancelled relay also ends its loop; never end the stream on a cut-off body.
            try Task.checkCancellation()
            try await outbound.write(.end(nil))
        }
    }

    private func receive(_ inbound: NIOAsyncChannelInboundStream<HTTPResponsePart>, collectingUpTo limit: Int?) async throws {
        var parts = inbound.makeAsyncIterator()
        let response = try await Self.responseHead(&parts)
        if let limit, let length = response.headerFields[.contentLength].flatMap(Int.init), length <= limit {
            var whole = ByteBuffer()
            while let part = try await parts.next() {
                switch part {
                case .body(var chunk):
                    guard whole.readableBytes + chunk.readableBytes <= limit else {
                        throw H2CMalformedResponse(description: "the upstream sent more body than its content-length")
                    }
                    whole.writeBuffer(&chunk)
                case .end:
                    headDelivered.withLockedValue { $0 = true }
                    head.succeed(Start(head: response, wholeBody: whole))
                    return
                case .head:
                    throw H2CMalformedResponse(description: "the upstream sent a second response head")
                }
            }
            throw H2CMalformedResponse(description: "the upstream ended the stream without finishing its response")
        }
        headDelivered.withLockedValue { $0 = true }
        head.succeed(Start(head: response, wholeBody: nil))
        while let part = try await parts.next() {
            switch part {
            case .body(let chunk):
                await body.send(chunk)
                try Task.checkCancellation()
            case .end:
                body.finish()
                return
            case .head:
                throw H2CMalformedResponse(description: "the upstream sent a second response head")
            }
        }
        throw H2CMalformedResponse(description: "the upstream ended the stream without finishing its response")
    }

    /// The final response head; informational (1xx) heads are skipped.
    private static func responseHead(_ parts: inout NIOAsyncChannelInboundStream<HTTPResponsePart>.AsyncIterator) async throws -> HTTPResponse {
        while true {
            switch try await parts.next() {
            case .head(let head) where head.status.kind != .informational:
                return head
            case .head:
                continue
            case .body, .end, nil:
                throw H2CMalformedResponse(description: "the upstream ended the stream before a response head")
            }
        }
    }

    private func fail(_ error: any Error) {
        if headDelivered.withLockedValue({ $0 }) {
            body.fail(error)
        } else {
            head.fail(error)
        }
    }
}

/// Cancels its exchange when the response body is dropped before its end (the client
/// went away): the upstream stream is then reset instead of left open.
final class ExchangeCancellation: Sendable {
    private let task: Task<Void, Never>

    init(task: Task<Void, Never>) {
        self.task = task
    }

    deinit {
        task.cancel()
    }
}

/// The body of an h2c upstream's response, chunk by chunk as the upstream sends it.
struct H2CResponseBody: AsyncSequence, Sendable {
    /// A response body as the exchange hands it over.
    enum Contents: Sendable {
        /// A small body with a `content-length`, already read.
        case whole(ByteBuffer)
        /// A body still arriving.
        case streaming(H2CResponseBody)
    }

    typealias Element = ByteBuffer
    let chunks: AsyncThrowingChannel<ByteBuffer, any Error>
    let exchange: ExchangeCancellation

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingChannel<ByteBuffer, any Error>.AsyncIterator
        let exchange: ExchangeCancellation

        mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: chunks.makeAsyncIterator(), exchange: exchange)
    }
}

/// Ends an upstream stream that is too slow: `firstByte` until the response head, then
/// `idle` between reads. The stream's reader gets ``UpstreamTimeout`` and the stream is
/// closed (RST_STREAM to the upstream).
///
/// It also hands a failed write of the request head (a stream started after the upstream's
/// GOAWAY, say) to the reader as an error; otherwise the reader would wait for `firstByte`.
final class UpstreamTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPResponsePart
    typealias InboundOut = HTTPResponsePart
    typealias OutboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPRequestPart

    private let firstByte: TimeAmount
    private let idle: TimeAmount
    private var sawHead = false
    private var deadline: Scheduled<Void>?

    init(firstByte: TimeAmount, idle: TimeAmount) {
        self.firstByte = firstByte
        self.idle = idle
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context, stage: .firstByte)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.status.kind != .informational {
            sawHead = true
        }
        arm(context, stage: sawHead ? .idle : .firstByte)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        let written = promise ?? context.eventLoop.makePromise()
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenFailure { error in
            // A reset or closed stream reports itself to the reader, after the response
            // parts that came before it; only a head that never left needs reporting here.
            if error is NIOHTTP2Errors.StreamClosed || error is ChannelError { return }
            let context = loopBoundContext.value
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
        context.write(data, promise: written)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext, stage: UpstreamTimeout.Stage) {
        deadline?.cancel()
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: stage == .firstByte ? firstByte : idle) {
            let context = loopBoundContext.value
            context.fireErrorCaught(UpstreamTimeout(stage: stage))
            context.close(promise: nil)
        }
    }
}

/// Tells the pool when the upstream sends GOAWAY, with its last stream ID, so no new
/// stream is opened on that connection (streams at or below that ID finish on it), and
/// reports the errors that end the connection.
final class ConnectionWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    private let onGoAway: @Sendable (HTTP2StreamID) -> Void
    private let onError: @Sendable (any Error) -> Void

    init(onGoAway: @escaping @Sendable (HTTP2StreamID) -> Void, onError: @escaping @Sendable (any Error) -> Void) {
        self.onGoAway = onGoAway
        self.onError = onError
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway(let lastStreamID, _, _) = unwrapInboundIn(data).payload {
            onGoAway(lastStreamID)
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if Self.endsConnection(error) {
            onError(error)
        }
        context.fireErrorCaught(error)
    }

    /// Whether `error` leaves the connection unusable. NIOHTTP2 reports stream errors (a
    /// content-length mismatch on one stream, say, which it answers with RST_STREAM) on
    /// the connection too; those end one stream and the others go on. Connection errors
    /// (its flood defences, frames it cannot parse, HPACK state lost, socket errors) make
    /// it send GOAWAY without closing, and streams opened afterwards would wait in vain.
    static func endsConnection(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames, is NIOHTTP2Errors.ExcessiveControlFrames, is NIOHTTP2Errors.ExcessiveEmptyDataFrames,
            is NIOHTTP2Errors.ExcessiveStreamErrors, is NIOHTTP2Errors.ExcessiveNumberOfGlitches, is NIOHTTP2Errors.ExcessiveContinuationFrames,
            is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering, is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock, is NIOHTTP2Errors.UnableToParseFrame,
            is any NIOHPACKError, is IOError:
            return true
        default:
            return false
        }
    }
}
