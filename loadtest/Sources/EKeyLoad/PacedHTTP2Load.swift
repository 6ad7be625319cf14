import Histogram
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// A fixed-rate (open-model) load over HTTP/2 with TLS, run wholly on one event loop: each
/// request is one stream channel written when its time comes, with no task, no `await`
/// and no HTTP client state machine in between. It exists for the latency-at-a-rate
/// figures: AsyncHTTPClient costs the generator about 0.36 ms of CPU per TLS HTTP/2
/// request, so at half the issuer's rate it filled its core and sent in bursts, and the
/// p99 measured the generator. This engine reports how late its own sends were, so a
/// figure it gives says whether the generator kept to its schedule.
struct PacedHTTP2Load {
    /// One request, written as HEADERS (and DATA when there is a body).
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]
    }

    /// What the run measured.
    struct Outcome {
        var histogram: Histogram<UInt64>
        var statuses: [Int: Int]
        var failures: Int
        var seconds: Double
        /// Sends later than 1 ms after their scheduled time.
        var lateSends: Int
        /// The latest a send was after its scheduled time, in milliseconds.
        var maximumLatenessMilliseconds: Double
    }

    let host: String
    let port: Int
    let authority: String
    let tls: TLSConfiguration
    let connections: Int

    /// Sends `count` requests at `rate` per second, request `index` made by `request`, and
    /// waits for every answer (or failure).
    func run(rate: Double, count: Int, request: @escaping @Sendable (Int) -> Request) async throws -> Outcome {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let outcome = try await run(on: group.next(), rate: rate, count: count, request: request)
            try await group.shutdownGracefully()
            return outcome
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func run(on loop: any EventLoop, rate: Double, count: Int, request: @escaping @Sendable (Int) -> Request) async throws -> Outcome {
        let context = try NIOSSLContext(configuration: tls)
        var multiplexers: [NIOHTTP2Handler.StreamMultiplexer] = []
        var channels: [any Channel] = []
        for _ in 0..<max(1, connections) {
            let (channel, multiplexer) = try await connect(on: loop, context: context)
            channels.append(channel)
            multiplexers.append(multiplexer)
        }
        let run = PacedRun(loop: loop, multiplexers: multiplexers, authority: authority, rate: rate, count: count, request: request)
        let outcome = try await loop.flatSubmit { run.start() }.get()
        for channel in channels { try? await channel.close() }
        return outcome
    }

    /// One TLS connection, its handshake done and the HTTP/2 multiplexer in place.
    private func connect(on loop: any EventLoop, context: NIOSSLContext) async throws -> (any Channel, NIOHTTP2Handler.StreamMultiplexer) {
        let handshake = loop.makePromise(of: Void.self)
        let multiplexerPromise = loop.makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
        let serverName = host.first?.isNumber == true ? nil : host
        // The HTTP/2 handler is in place before the handshake, so the server's SETTINGS,
        // which may arrive with the handshake's last bytes, are never read without it.
        do {
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                        try sync.addHandler(HandshakeWatcher(promise: handshake))
                        multiplexerPromise.succeed(
                            try sync.configureHTTP2Pipeline(mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()) { stream in
                                stream.eventLoop.makeSucceededVoidFuture()
                            })
                    }
                }
                .connect(host: host, port: port).get()
            try await handshake.futureResult.get()
            let multiplexer = try await multiplexerPromise.futureResult.get()
            return (channel, multiplexer)
        } catch {
            // A connection that failed before its initializer ran, or in it, leaves these
            // unfulfilled; a promise completed already keeps its first result.
            handshake.fail(error)
            multiplexerPromise.fail(error)
            throw error
        }
    }
}

/// Fulfils `promise` when the TLS handshake has completed, and fails it if the connection
/// ends or errs first.
private final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            if negotiated == "h2" {
                promise.succeed()
            } else {
                promise.fail(PacedLoadError("the server did not negotiate HTTP/2 (ALPN gave \(negotiated ?? "nothing"))"))
            }
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(PacedLoadError("the connection closed during the TLS handshake"))
        context.fireChannelInactive()
    }
}

/// Why the paced load could not run.
struct PacedLoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The schedule and the tallies of one run; touched only on its event loop (every method
/// is called there), hence `@unchecked Sendable`.
private final class PacedRun: @unchecked Sendable {
    let loop: any EventLoop
    let multiplexers: [NIOHTTP2Handler.StreamMultiplexer]
    let authority: String
    let rate: Double
    let count: Int
    let request: @Sendable (Int) -> PacedHTTP2Load.Request
    let done: EventLoopPromise<PacedHTTP2Load.Outcome>

    var started = NIODeadline.now()
    var next = 0
    var answered = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var statuses: [Int: Int] = [:]
    var failures = 0
    var lateSends = 0
    var maximumLateness = TimeAmount.zero

    init(
        loop: any EventLoop, multiplexers: [NIOHTTP2Handler.StreamMultiplexer], authority: String, rate: Double, count: Int,
        request: @escaping @Sendable (Int) -> PacedHTTP2Load.Request
    ) {
        self.loop = loop
        self.multiplexers = multiplexers
        self.authority = authority
        self.rate = rate
        self.count = count
        self.request = request
        done = loop.makePromise()
    }

    func start() -> EventLoopFuture<PacedHTTP2Load.Outcome> {
        started = .now()
        sendDue()
        return done.futureResult
    }

    private func due(_ index: Int) -> NIODeadline {
        started + .nanoseconds(Int64(Double(index) / rate * 1e9))
    }

    /// Sends every request whose time has come, then sleeps until the next one's.
    private func sendDue() {
        let now = NIODeadline.now()
        while next < count, due(next) <= now {
            let lateness = now - due(next)
            if lateness > .milliseconds(1) { lateSends += 1 }
            maximumLateness = max(maximumLateness, lateness)
            send(next)
            next += 1
        }
        if next < count {
            loop.scheduleTask(deadline: due(next)) { self.sendDue() }
        }
    }

    private func send(_ index: Int) {
        let request = request(index)
        var headers = HPACKHeaders([(":method", request.method), (":path", request.path), (":scheme", "https"), (":authority", authority)])
        for (name, value) in request.headers { headers.add(name: name, value: value) }
        if !request.body.isEmpty { headers.add(name: "content-length", value: String(request.body.count)) }
        let sent = NIODeadline.now()
        multiplexers[index % multiplexers.count].createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(StreamAnswer(sent: sent, run: self))
            }
        }.whenComplete { result in
            switch result {
            case .success(let stream):
                let hasBody = !request.body.isEmpty
                stream.write(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: !hasBody)), promise: nil)
                if hasBody {
                    stream.write(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: request.body)), endStream: true)), promise: nil)
                }
                stream.flush()
            case .failure:
                self.record(status: nil, since: sent)
            }
        }
    }

    /// One answer (a status) or one failure (`nil`), timed from its send.
    func record(status: Int?, since sent: NIODeadline) {
        let elapsed = NIODeadline.now() - sent
        _ = histogram.record(UInt64(max(0, elapsed.nanoseconds / 1000)))
        if let status { statuses[status, default: 0] += 1 } else { failures += 1 }
        answered += 1
        if answered == count {
            let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            done.succeed(
                .init(
                    histogram: histogram, statuses: statuses, failures: failures, seconds: seconds, lateSends: lateSends,
                    maximumLatenessMilliseconds: Double(maximumLateness.nanoseconds) / 1e6))
        }
    }
}

/// Reads one stream's answer: the final status, then the end of the stream.
private final class StreamAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let sent: NIODeadline
    private let run: PacedRun
    private var status: Int?
    private var finished = false

    init(sent: NIODeadline, run: PacedRun) {
        self.sent = sent
        self.run = run
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if let code = frame.headers.first(name: ":status").flatMap({ Int($0) }), code >= 200 { status = code }
            if frame.endStream { finish(context: context) }
        case .data(let frame):
            if frame.endStream { finish(context: context) }
        case .rstStream:
            status = nil
            finish(context: context)
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        status = nil
        finish(context: context)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            status = nil
            finish(context: context)
        }
        context.fireChannelInactive()
    }

    /// Records the answer. The stream channel closes by itself once both sides have ended
    /// the stream; closing it here, while the last frame is read, would send `RST_STREAM`,
    /// and servers count resets against the client (the rapid-reset limit).
    private func finish(context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        run.record(status: status, since: sent)
    }
}
