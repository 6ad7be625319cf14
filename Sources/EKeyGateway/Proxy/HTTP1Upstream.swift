import AsyncAlgorithms
import EKeyConfig
import EKeyServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An `http://` upstream: HTTP/1.1 over plain TCP on keep-alive connections kept per event
/// loop, so a forwarded request is written and answered on the loop that runs it
/// (docs/spec/gateway.md step 6).
///
/// A request takes an idle connection of its loop or opens one; at most
/// ``defaultConnectionsPerLoop`` are open per loop, and a request beyond that waits for one to be
/// free (up to `first_byte`, then 504 with nothing sent). A connection goes back to the pool
/// when its response ended and both sides kept it alive; otherwise it is closed. Idle pooled
/// connections are closed after ``defaultPoolIdleLimit``.
///
/// Timeouts: `connect` for the TCP connection, `first_byte` from the request to the response
/// head, `idle` between reads of the response body. Only a connection that could not be
/// made, or a slot that never came free, counts as "nothing sent".
final class HTTP1Upstream: Sendable {
    /// Host, port, `Host`/`:authority` value and base path of the upstream.
    let address: UpstreamAddress
    private let timeouts: TimeoutsConfig
    private let connectionsPerLoop: Int
    /// The loop whose connections serve callers not running on an event loop.
    private let offLoopCallers: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    private let pools = NIOLockedValueBox<[ObjectIdentifier: LoopPool]>([:])
    private let nextWaiter = NIOLockedValueBox(0)

    /// Open connections allowed per event loop, unless the initializer says otherwise.
    static let defaultConnectionsPerLoop = 256
    /// How long a pooled connection may stay idle, unless the initializer says otherwise.
    static let defaultPoolIdleLimit: TimeAmount = .seconds(60)
    private let poolIdleLimit: TimeAmount

    private struct LoopPool {
        /// Pooled connections and since when each has been idle, the last released last.
        var idle: [(connection: HTTP1UpstreamConnection, since: NIODeadline)] = []
        /// Whether a sweep for idle connections is scheduled on the loop.
        var sweeping = false
        var open = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<HTTP1UpstreamConnection?, any Error>)] = []
    }

    /// Prepares (but does not open) connections to `upstream`, an `http://` URL.
    init(
        upstream: URL, timeouts: TimeoutsConfig, connectionsPerLoop: Int = HTTP1Upstream.defaultConnectionsPerLoop,
        poolIdleLimit: TimeAmount = HTTP1Upstream.defaultPoolIdleLimit
    ) throws {
        address = try UpstreamAddress(upstream)
        self.timeouts = timeouts
        self.connectionsPerLoop = max(1, connectionsPerLoop)
        self.poolIdleLimit = poolIdleLimit
    }

    /// Closes every pooled connection.
    func shutdown() async {
        let idle = pools.withLockedValue { pools in
            defer { for key in pools.keys { pools[key]?.idle = [] } }
            return pools.values.flatMap { $0.idle.map(\.connection) }
        }
        for connection in idle {
            try? await connection.channel.close()
        }
    }

    /// Sends the request and waits for the response head. A small response with a
    /// `content-length` (and no streamed request body) arrives whole; any other streams.
    ///
    /// Retries: a request goes to another connection when its pooled one turned out closed
    /// before the request was written (up to ``attempts`` times), and once more when a
    /// reused connection closed after the request was written but before any answer (the
    /// upstream timing out a keep-alive connection as the request arrived) if the request
    /// may be repeated: an idempotent method (RFC 9110 §9.2.2) and a body held whole.
    ///
    /// Once any attempt was written, a later failure is thrown as ``UpstreamRequestWritten``:
    /// the upstream may have processed the request, so its use is never given back.
    func exchange(head: HTTPRequestHead, body: UpstreamRequestBody) async throws -> (HTTPResponseHead, HTTP1ResponseContents) {
        var attempt = 1
        var resent = false
        while true {
            do {
                return try await exchangeOnce(head: head, body: body, newConnection: resent)
            } catch is HTTP1ConnectionGone where attempt < Self.attempts {
                attempt += 1
            } catch let closed as HTTP1ClosedBeforeAnswer where closed.reusedConnection && !resent && Self.mayRepeat(head.method, body) {
                resent = true
            } catch {
                if resent, error is UpstreamConnectFailed || error is HTTP1ConnectionGone || error is UpstreamNeverSent {
                    throw UpstreamRequestWritten(underlying: error)
                }
                throw error
            }
        }
    }

    /// How many pooled connections a request tries when each turns out closed before anything was written.
    static let attempts = 3

    /// Whether a request may be sent a second time: an idempotent method, and a body that is
    /// still at hand (not streamed).
    static func mayRepeat(_ method: HTTPMethod, _ body: UpstreamRequestBody) -> Bool {
        if case .stream = body { return false }
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }

    private func exchangeOnce(head: HTTPRequestHead, body: UpstreamRequestBody, newConnection: Bool) async throws
        -> (HTTPResponseHead, HTTP1ResponseContents)
    {
        let connection = try await acquire(newConnection: newConnection)
        let eventLoop = connection.channel.eventLoop
        let started = eventLoop.makePromise(of: HTTP1ResponseStart.self)
        var head = head
        head.headers.replaceOrAdd(name: "host", value: address.authority)
        let bytes: ByteBuffer?
        let streamed: AsyncThrowingChannel<ByteBuffer, any Error>?
        // The framing is always the gateway's own (the caller's headers carry none): a body
        // the upstream could not delimit would be read as the start of another request.
        head.headers.remove(name: "content-length")
        head.headers.remove(name: "transfer-encoding")
        var streamLength: Int64?
        switch body {
        case .none:
            bytes = nil
            streamed = nil
            if ![.GET, .HEAD, .DELETE, .OPTIONS, .TRACE, .CONNECT].contains(head.method) {
                head.headers.add(name: "content-length", value: "0")
            }
        case .bytes(let buffer):
            bytes = buffer
            streamed = nil
            head.headers.add(name: "content-length", value: String(buffer.readableBytes))
        case .stream(let chunks, let length):
            bytes = nil
            streamed = chunks
            streamLength = length
            if let length {
                head.headers.add(name: "content-length", value: String(length))
            } else {
                head.headers.add(name: "transfer-encoding", value: "chunked")
            }
        }
        let request = head
        if let streamed {
            // The body is consumed as it is sent, so it starts only on a connection that took the head.
            let wrote = try await eventLoop.submit {
                connection.handler.value.start(request, body: nil, bodyFollows: true, promise: started)
            }.get()
            guard wrote else { throw HTTP1ConnectionGone() }
            let channel = connection.channel
            let declared = streamLength
            Task {
                do {
                    var sent: Int64 = 0
                    for try await chunk in streamed {
                        sent += Int64(chunk.readableBytes)
                        // More than the declared length would spill into the next request.
                        if let declared, sent > declared { throw BodyLengthMismatch() }
                        let written = channel.eventLoop.makePromise(of: Void.self)
                        channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(chunk)), promise: written)
                        if !channel.isWritable { try await written.futureResult.get() }
                    }
                    if let declared, sent != declared { throw BodyLengthMismatch() }
                    try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
                } catch {
                    channel.close(promise: nil)
                }
            }
        } else {
            eventLoop.execute {
                _ = connection.handler.value.start(request, body: bytes, bodyFollows: false, promise: started)
            }
        }
        let start = try await started.futureResult.get()
        return (start.head, start.contents)
    }

    /// A connection of the running loop: an idle pooled one unless `newConnection`, else a new
    /// one, or the next to come free when the loop has its maximum open.
    private func acquire(newConnection: Bool) async throws -> HTTP1UpstreamConnection {
        let eventLoop = MultiThreadedEventLoopGroup.currentEventLoop ?? offLoopCallers
        let key = ObjectIdentifier(eventLoop)
        enum Choice {
            case reuse(HTTP1UpstreamConnection)
            case open
            case wait
        }
        let choice: Choice = pools.withLockedValue { pools in
            var pool = pools[key] ?? LoopPool()
            defer { pools[key] = pool }
            while !newConnection, let (connection, _) = pool.idle.popLast() {
                if connection.channel.isActive { return .reuse(connection) }
            }
            guard pool.open < connectionsPerLoop else { return .wait }
            pool.open += 1
            return .open
        }
        switch choice {
        case .reuse(let connection):
            return connection
        case .open:
            return try await connect(on: eventLoop, key: key)
        case .wait:
            if let handedOver = try await waitForConnection(key: key, eventLoop: eventLoop) {
                return handedOver
            }
            return try await connect(on: eventLoop, key: key)
        }
    }

    /// Waits for a connection of the loop to be released (returned) or closed (`nil`: a
    /// slot to open one); throws ``UpstreamNeverSent`` after `first_byte`.
    private func waitForConnection(key: ObjectIdentifier, eventLoop: any EventLoop) async throws -> HTTP1UpstreamConnection? {
        let id = nextWaiter.withLockedValue { next in
            next += 1
            return next
        }
        let pools = self.pools
        return try await withCheckedThrowingContinuation { continuation in
            pools.withLockedValue { $0[key, default: LoopPool()].waiters.append((id, continuation)) }
            eventLoop.scheduleTask(in: TimeAmount(timeouts.firstByte)) {
                let expired = pools.withLockedValue { pools -> CheckedContinuation<HTTP1UpstreamConnection?, any Error>? in
                    guard let index = pools[key]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return pools[key]?.waiters.remove(at: index).continuation
                }
                expired?.resume(throwing: UpstreamNeverSent(underlying: UpstreamTimeout(stage: .firstByte)))
            }
        }
    }

    private func connect(on eventLoop: any EventLoop, key: ObjectIdentifier) async throws -> HTTP1UpstreamConnection {
        let timeouts = self.timeouts
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeouts.connect))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        HTTP1ExchangeHandler(firstByte: TimeAmount(timeouts.firstByte), idle: TimeAmount(timeouts.idle)))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            slotFreed(key: key)
            throw UpstreamConnectFailed(underlying: error)
        }
        let connection: HTTP1UpstreamConnection
        do {
            connection = try await channel.eventLoop.submit {
                let handler = try channel.pipeline.syncOperations.handler(type: HTTP1ExchangeHandler.self)
                let connection = HTTP1UpstreamConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                handler.onReusable = { [weak self] in self?.release(connection, key: key) }
                return connection
            }.get()
        } catch {
            channel.close(promise: nil)
            slotFreed(key: key)
            throw UpstreamConnectFailed(underlying: error)
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.closed(connection, key: key)
        }
        return connection
    }

    /// A connection whose exchange ended cleanly: to a waiting request, else to the pool.
    private func release(_ connection: HTTP1UpstreamConnection, key: ObjectIdentifier) {
        let waiter = pools.withLockedValue { pools -> CheckedContinuation<HTTP1UpstreamConnection?, any Error>? in
            if pools[key]?.waiters.isEmpty == false {
                return pools[key]?.waiters.removeFirst().continuation
            }
            pools[key, default: LoopPool()].idle.append((connection, .now()))
            return nil
        }
        if let waiter {
            waiter.resume(returning: connection)
        } else {
            scheduleSweep(key: key, on: connection.channel.eventLoop)
        }
    }

    /// Pooled connections carry no timer of their own (a loop with hundreds of timers makes
    /// every cancellation slow: SwiftNIO finds the one to cancel by a linear search). One
    /// sweep per loop, every half idle limit while the pool holds any, closes those unused
    /// for the limit.
    private func scheduleSweep(key: ObjectIdentifier, on eventLoop: any EventLoop) {
        let start = pools.withLockedValue { pools -> Bool in
            guard pools[key]?.sweeping == false else { return false }
            pools[key]?.sweeping = true
            return true
        }
        guard start else { return }
        eventLoop.scheduleTask(in: .nanoseconds(max(poolIdleLimit.nanoseconds / 2, 1_000_000))) { [weak self] in
            self?.sweep(key: key, on: eventLoop)
        }
    }

    private func sweep(key: ObjectIdentifier, on eventLoop: any EventLoop) {
        let oldest = NIODeadline.now() - poolIdleLimit
        let (expired, more) = pools.withLockedValue { pools -> ([HTTP1UpstreamConnection], Bool) in
            guard var pool = pools[key] else { return ([], false) }
            defer { pools[key] = pool }
            let expired = pool.idle.filter { $0.since <= oldest }.map(\.connection)
            pool.idle.removeAll { $0.since <= oldest }
            pool.sweeping = false
            return (expired, !pool.idle.isEmpty)
        }
        for connection in expired {
            connection.channel.close(promise: nil)
        }
        if more { scheduleSweep(key: key, on: eventLoop) }
    }

    private func closed(_ connection: HTTP1UpstreamConnection, key: ObjectIdentifier) {
        pools.withLockedValue { pools in
            pools[key]?.idle.removeAll { $0.connection === connection }
        }
        slotFreed(key: key)
    }

    /// A connection of the loop is gone: a waiting request may open one in its place.
    private func slotFreed(key: ObjectIdentifier) {
        let waiter = pools.withLockedValue { pools -> CheckedContinuation<HTTP1UpstreamConnection?, any Error>? in
            if pools[key]?.waiters.isEmpty == false {
                return pools[key]?.waiters.removeFirst().continuation
            }
            pools[key]?.open -= 1
            return nil
        }
        waiter?.resume(returning: nil)
    }
}

/// One pooled connection and its exchange handler (used on the connection's event loop only).
final class HTTP1UpstreamConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<HTTP1ExchangeHandler>

    init(channel: any Channel, handler: NIOLoopBound<HTTP1ExchangeHandler>) {
        self.channel = channel
        self.handler = handler
    }
}

/// A response head and how its body arrives.
struct HTTP1ResponseStart: Sendable {
    let head: HTTPResponseHead
    let contents: HTTP1ResponseContents
}

/// The body of an `http://` upstream's response.
enum HTTP1ResponseContents: Sendable {
    /// A small body with a `content-length`, already read.
    case whole(ByteBuffer)
    /// A body still arriving.
    case streaming(HTTP1ResponseBody)
}

/// A response body still arriving from an `http://` upstream. Dropped before its end (the
/// client went away), it closes the upstream connection instead of leaving it half-read.
struct HTTP1ResponseBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let stream: InboundBodyStream
    let guardian: ConnectionGuardian

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: InboundBodyStream.AsyncIterator
        let guardian: ConnectionGuardian

        mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), guardian: guardian)
    }
}

/// Closes the upstream connection when the last reference to an unfinished response body goes.
final class ConnectionGuardian: Sendable {
    let channel: any Channel
    let stream: InboundBodyStream

    init(channel: any Channel, stream: InboundBodyStream) {
        self.channel = channel
        self.stream = stream
    }

    deinit {
        if !stream.hasEnded {
            channel.close(promise: nil)
        }
    }
}

/// The pooled connection closed before the request was written: nothing was sent.
struct HTTP1ConnectionGone: Error, CustomStringConvertible {
    var description: String { "the upstream closed its pooled connections before the request could be written" }
}

/// The connection closed (or was reset) after the request was written and before any
/// response byte came. On a connection that had carried earlier exchanges, this is most
/// often the upstream closing an idle keep-alive connection as the request arrived.
struct HTTP1ClosedBeforeAnswer: Error, CustomStringConvertible {
    /// The connection had served an exchange before this one.
    let reusedConnection: Bool
    var description: String { "the upstream closed the connection after the request was written, before answering" }
}

/// The exchange broke after the request was written: an answer nobody asked for, or the
/// connection closed before the response ended.
struct HTTP1ExchangeBroken: Error, CustomStringConvertible {
    let description: String
}

/// Runs one exchange at a time on an upstream connection: writes the request, hands over
/// the response head (with the body whole or streaming), enforces `first_byte` and `idle`,
/// and reports the connection reusable when both sides kept it alive.
final class HTTP1ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case idle
        case waitingForHead(EventLoopPromise<HTTP1ResponseStart>, readsWhole: Bool)
        case collecting(EventLoopPromise<HTTP1ResponseStart>, HTTPResponseHead, ByteBuffer)
        case streaming(InboundBodyStream)
        case closed
    }

    private let firstByte: TimeAmount
    private let idle: TimeAmount
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var requestEnded = true
    private var keepAlive = true
    /// When the limit of the exchange in progress runs out: `first_byte`, or `idle` (counted
    /// from `lastRead`); `nil` between exchanges.
    private var due: NIODeadline?
    /// Timers not yet fired, by when they fire. A timer is never cancelled on the way
    /// (SwiftNIO cancels by a linear search of every timer of the loop, and a loop with a
    /// full pool holds hundreds): one that fires before `due` schedules the next, and a new
    /// one is added only when none fires by the new `due`. Closing cancels what is left.
    private var timers: [(at: NIODeadline, task: Scheduled<Void>)] = []
    private var stage = UpstreamTimeout.Stage.firstByte
    private var lastRead = NIODeadline.now()
    private var readHeldBack = false
    /// Exchanges started on this connection.
    private var exchanges = 0
    /// Runs when an exchange ended and the connection can carry another.
    var onReusable: (() -> Void)?

    init(firstByte: TimeAmount, idle: TimeAmount) {
        self.firstByte = firstByte
        self.idle = idle
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(ChannelError.ioOnClosedChannel)
        self.context = nil
        onReusable = nil
    }

    /// Writes the request head, and the whole body with the end unless `bodyFollows`
    /// (then the caller writes body parts and the end through the channel). Returns
    /// `false`, and fails `promise` with ``HTTP1ConnectionGone``, when the connection
    /// closed before anything was written.
    func start(_ head: HTTPRequestHead, body: ByteBuffer?, bodyFollows: Bool, promise: EventLoopPromise<HTTP1ResponseStart>) -> Bool {
        guard case .idle = state, let context, context.channel.isActive else {
            promise.fail(HTTP1ConnectionGone())
            return false
        }
        state = .waitingForHead(promise, readsWhole: !bodyFollows)
        exchanges += 1
        keepAlive = true
        requestEnded = !bodyFollows
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if !bodyFollows {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.flush()
        stage = .firstByte
        arm(at: .now() + firstByte, context: context)
        return true
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            requestEnded = true
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if case .streaming(let stream) = state, stream.isPaused {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code < 200 && head.status != .switchingProtocols { return }
            guard case .waitingForHead(let promise, let readsWhole) = state else {
                fail(HTTP1ExchangeBroken(description: "the upstream sent a response nobody asked for"))
                context.close(promise: nil)
                return
            }
            keepAlive = head.isKeepAlive
            noteRead(context)
            if readsWhole, let length = head.headers.first(name: "content-length").flatMap(Int.init), length <= Forwarder.smallBodyLimit {
                state = .collecting(promise, head, context.channel.allocator.buffer(capacity: length))
            } else {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let eventLoop = context.eventLoop
                let stream = InboundBodyStream { eventLoop.execute { loopBound.value.resumeReading() } }
                state = .streaming(stream)
                let body = HTTP1ResponseBody(stream: stream, guardian: ConnectionGuardian(channel: context.channel, stream: stream))
                promise.succeed(HTTP1ResponseStart(head: head, contents: .streaming(body)))
            }
        case .body(let buffer):
            noteRead(context)
            switch state {
            case .collecting(let promise, let head, var collected):
                state = .idle
                collected.writeImmutableBuffer(buffer)
                state = .collecting(promise, head, collected)
            case .streaming(let stream):
                stream.append(buffer)
            default:
                break
            }
        case .end:
            due = nil
            let finished = state
            state = .idle
            // The connection is back in the pool before the reader hears of the end, so a
            // next request on its heels finds it there.
            if keepAlive && requestEnded {
                onReusable?()
            } else {
                context.close(promise: nil)
            }
            switch finished {
            case .collecting(let promise, let head, let collected):
                promise.succeed(HTTP1ResponseStart(head: head, contents: .whole(collected)))
            case .streaming(let stream):
                stream.finish()
            default:
                break
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if case .waitingForHead = state {
            fail(HTTP1ClosedBeforeAnswer(reusedConnection: exchanges > 1))
        } else {
            fail(HTTP1ExchangeBroken(description: "the upstream closed the connection before the response ended"))
        }
        state = .closed
        onReusable = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .waitingForHead = state, error is IOError {
            fail(HTTP1ClosedBeforeAnswer(reusedConnection: exchanges > 1))
        } else {
            fail(error)
        }
        state = .closed
        context.close(promise: nil)
    }

    private func resumeReading() {
        guard readHeldBack, let context else { return }
        if case .streaming(let stream) = state, stream.isPaused { return }
        readHeldBack = false
        context.read()
    }

    private func fail(_ error: any Error) {
        switch state {
        case .waitingForHead(let promise, _), .collecting(let promise, _, _):
            promise.fail(error)
        case .streaming(let stream):
            stream.finish(error)
        case .idle, .closed:
            break
        }
        state = .idle
    }

    /// Response data arrived: from now on `idle` applies, counted from this read.
    private func noteRead(_ context: ChannelHandlerContext) {
        lastRead = .now()
        stage = .idle
        arm(at: lastRead + idle, context: context)
    }

    /// Makes `time` the end of the limit in force, adding a timer only when none fires by then.
    private func arm(at time: NIODeadline, context: ChannelHandlerContext) {
        due = time
        if timers.contains(where: { $0.at <= time }) { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: time) {
            loopBound.value.timerFired(at: time)
        }
        timers.append((time, task))
    }

    private func cancelTimers() {
        for timer in timers { timer.task.cancel() }
        timers = []
        due = nil
    }

    private func timerFired(at time: NIODeadline) {
        timers.removeAll { $0.at == time }
        guard let context, let due else { return }
        if due > .now() {
            arm(at: due, context: context)
            return
        }
        self.due = nil
        switch state {
        case .waitingForHead, .collecting, .streaming:
            fail(UpstreamTimeout(stage: stage))
            state = .closed
            context.close(promise: nil)
        case .idle, .closed:
            return
        }
    }
}

@available(*, unavailable)
extension HTTP1ExchangeHandler: Sendable {}
