import EKeyServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// One request the recording upstream received, as it parsed it.
struct RecordedRequest: Sendable, CustomStringConvertible {
    /// Its position among all requests the upstream parsed, from 0 (sent back in `X-Recording-Upstream`).
    var sequence: Int
    /// The connection it came on (an index into ``RecordingUpstream/connections``).
    var connection: Int
    var http2: Bool
    var method: String
    /// The request target (HTTP/1.1) or `:path` (HTTP/2).
    var target: String
    /// The header fields in order, names as sent (pseudo-header fields not included).
    var headers: [(name: String, value: String)]
    /// HTTP/2 only: the pseudo-header fields, in order, duplicates kept.
    var pseudoHeaders: [(name: String, value: String)]
    /// HTTP/2 only: every field of the header block in order, pseudo-header fields included.
    var headerBlock: [(name: String, value: String)]
    var body: [UInt8]
    var framing: UpstreamFraming

    /// The values of the fields named `name` (case-insensitive), in order.
    func values(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    var description: String {
        "#\(sequence) \(http2 ? "h2" : "HTTP/1.1") \(method) \(target) [\(framing), \(body.count) bytes] "
            + headers.map { "\($0.name): \($0.value)" }.joined(separator: " | ")
    }
}

/// What one connection to the recording upstream carried.
struct RecordedConnection: Sendable {
    var index: Int
    /// `h2` or `http/1.1`; `nil` until the protocol is known (TLS before ALPN).
    var protocolName: String?
    var tls: Bool
    /// Every byte received, after TLS.
    var bytes: [UInt8] = []
    /// HTTP/1.1: the received bytes not (yet) part of a parsed request.
    var unparsed: [UInt8] = []
    /// Why the parser gave up on this connection, if it did.
    var failure: String?
    var closed = false
}

/// An upstream for the gateway's boundary tests that keeps everything it receives and parses
/// it on its own: a legacy server's view of what the gateway forwards.
///
/// - ``Mode/http1``: raw TCP for `http://` routes; each connection's bytes go through
///   ``StrictHTTP1Parser`` (not SwiftNIO's decoder).
/// - ``Mode/h2c``: HTTP/2 with prior knowledge for `h2c://` routes (NIOHTTP2 with its
///   header and content-length validation off, so malformed blocks are recorded, not refused).
/// - ``Mode/tls(alpn:)``: TLS for `https://` routes, offering the ALPN protocols given
///   (`["h2"]`, `["http/1.1"]` or both), then one of the two above.
///
/// Every parsed request is answered `200 ok` with `X-Recording-Upstream: <sequence>` and the
/// connection kept alive; a connection the parser gives up on gets a 400 and is closed.
final class RecordingUpstream: Sendable {
    enum Mode: Sendable {
        case http1
        case h2c
        case tls(alpn: [String])
    }

    /// A point in the recording, to look at what came after it.
    struct Mark: Sendable {
        var requests: Int
        var failures: Int
        /// The bytes each connection had received.
        var bytesPerConnection: [Int]
    }

    private struct State {
        var connections: [RecordedConnection] = []
        var requests: [RecordedRequest] = []
        var failures: [String] = []
        var lastActivity = ContinuousClock.now
    }

    let mode: Mode
    private let sslContext: NIOSSLContext?
    private let state = NIOLockedValueBox(State())
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)

    /// `tls` is the server configuration (certificate and key) for ``Mode/tls(alpn:)``.
    init(mode: Mode, tls: TLSConfiguration? = nil) throws {
        self.mode = mode
        if case .tls(let alpn) = mode {
            guard var tls else { throw RecordingUpstreamError(description: "TLS mode needs a server TLS configuration") }
            tls.applicationProtocols = alpn
            sslContext = try NIOSSLContext(configuration: tls)
        } else {
            sslContext = nil
        }
    }

    /// The route URL scheme for this mode.
    var scheme: String {
        switch mode {
        case .http1: "http"
        case .h2c: "h2c"
        case .tls: "https"
        }
    }

    /// Listens on a free loopback port and returns it.
    func start() async throws -> Int {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.configure(channel)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        listener.withLockedValue { $0 = server }
        return server.localAddress!.port!
    }

    func stop() async {
        try? await listener.withLockedValue { $0 }?.close()
    }

    // MARK: Reading the recording

    var parsedRequests: [RecordedRequest] { state.withLockedValue { $0.requests } }
    var connections: [RecordedConnection] { state.withLockedValue { $0.connections } }
    /// The parser's failures, each naming its connection.
    var failures: [String] { state.withLockedValue { $0.failures } }

    func mark() -> Mark {
        state.withLockedValue { Mark(requests: $0.requests.count, failures: $0.failures.count, bytesPerConnection: $0.connections.map(\.bytes.count)) }
    }

    func requests(since mark: Mark) -> [RecordedRequest] {
        state.withLockedValue { Array($0.requests.dropFirst(mark.requests)) }
    }

    func failures(since mark: Mark) -> [String] {
        state.withLockedValue { Array($0.failures.dropFirst(mark.failures)) }
    }

    /// The connections that received bytes since `mark`.
    func connections(since mark: Mark) -> [RecordedConnection] {
        state.withLockedValue { state in
            state.connections.filter { $0.index >= mark.bytesPerConnection.count || $0.bytes.count > mark.bytesPerConnection[$0.index] }
        }
    }

    /// Waits until no byte has arrived for `quiet` (at most `timeout`), so a test looks at
    /// the recording once the gateway has finished writing.
    func settle(quiet: Duration = .milliseconds(40), timeout: Duration = .seconds(2)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let last = state.withLockedValue { $0.lastActivity }
            let idle = ContinuousClock.now - last
            if idle >= quiet { return }
            try? await Task.sleep(for: quiet - idle)
        }
    }

    // MARK: Recording

    fileprivate func openConnection(tls: Bool, protocolName: String?) -> Int {
        state.withLockedValue { state in
            state.connections.append(RecordedConnection(index: state.connections.count, protocolName: protocolName, tls: tls))
            state.lastActivity = .now
            return state.connections.count - 1
        }
    }

    fileprivate func update(_ connection: Int, _ change: (inout RecordedConnection) -> Void) {
        state.withLockedValue { state in
            change(&state.connections[connection])
            state.lastActivity = .now
        }
    }

    fileprivate func received(_ connection: Int, _ buffer: ByteBuffer) {
        update(connection) { $0.bytes.append(contentsOf: buffer.readableBytesView) }
    }

    fileprivate func failed(_ connection: Int, _ reason: String) {
        state.withLockedValue { state in
            state.connections[connection].failure = reason
            state.failures.append("connection \(connection): \(reason)")
            state.lastActivity = .now
        }
    }

    /// Records a request and returns its sequence number.
    fileprivate func record(_ make: (Int) -> RecordedRequest) -> Int {
        state.withLockedValue { state in
            let request = make(state.requests.count)
            state.requests.append(request)
            state.lastActivity = .now
            return request.sequence
        }
    }

    // MARK: Pipelines

    private func configure(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        switch mode {
        case .http1:
            try sync.addHandler(HTTP1RecordingHandler(upstream: self, connection: openConnection(tls: false, protocolName: "http/1.1")))
        case .h2c:
            try configureHTTP2(channel, connection: openConnection(tls: false, protocolName: "h2"))
        case .tls:
            let connection = openConnection(tls: true, protocolName: nil)
            try sync.addHandler(NIOSSLServerHandler(context: sslContext!))
            try sync.addHandler(
                ApplicationProtocolNegotiationHandler { result, channel in
                    channel.eventLoop.makeCompletedFuture {
                        if case .negotiated("h2") = result {
                            self.update(connection) { $0.protocolName = "h2" }
                            try self.configureHTTP2(channel, connection: connection)
                        } else {
                            self.update(connection) { $0.protocolName = "http/1.1" }
                            try channel.pipeline.syncOperations.addHandler(HTTP1RecordingHandler(upstream: self, connection: connection))
                        }
                    }
                })
        }
    }

    private func configureHTTP2(_ channel: any Channel, connection: Int) throws {
        var settings = NIOHTTP2Handler.ConnectionConfiguration()
        settings.headerBlockValidation = .disabled
        settings.contentLengthValidation = .disabled
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteTap(upstream: self, connection: connection))
        _ = try sync.configureHTTP2Pipeline(mode: .server, connectionConfiguration: settings, streamConfiguration: .init()) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2RecordingStreamHandler(upstream: self, connection: connection))
            }
        }
        let close = ConnectionClosedRecorder(upstream: self, connection: connection)
        try sync.addHandler(close, position: .first)
    }

    /// Records the bytes of an HTTP/2 connection before NIOHTTP2 reads them.
    private final class ByteTap: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let upstream: RecordingUpstream
        let connection: Int

        init(upstream: RecordingUpstream, connection: Int) {
            self.upstream = upstream
            self.connection = connection
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            upstream.received(connection, unwrapInboundIn(data))
            context.fireChannelRead(data)
        }
    }

    /// Marks an HTTP/2 connection closed.
    private final class ConnectionClosedRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny
        let upstream: RecordingUpstream
        let connection: Int

        init(upstream: RecordingUpstream, connection: Int) {
            self.upstream = upstream
            self.connection = connection
        }

        func channelInactive(context: ChannelHandlerContext) {
            upstream.update(connection) { $0.closed = true }
            context.fireChannelInactive()
        }
    }

    /// Parses an HTTP/1.1 connection's bytes with ``StrictHTTP1Parser`` and answers each request.
    private final class HTTP1RecordingHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let upstream: RecordingUpstream
        let connection: Int
        private var pending: [UInt8] = []
        private var failed = false

        init(upstream: RecordingUpstream, connection: Int) {
            self.upstream = upstream
            self.connection = connection
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            upstream.received(connection, buffer)
            guard !failed else { return }
            pending.append(contentsOf: buffer.readableBytesView)
            do {
                while !pending.isEmpty, let (request, consumed) = try StrictHTTP1Parser.parse(pending[...]) {
                    pending.removeFirst(consumed)
                    let connection = self.connection
                    let sequence = upstream.record { sequence in
                        RecordedRequest(
                            sequence: sequence, connection: connection, http2: false, method: request.method, target: request.target,
                            headers: request.headers, pseudoHeaders: [], headerBlock: request.headers, body: request.body, framing: request.framing)
                    }
                    let body = request.method == "HEAD" ? "" : "ok"
                    let response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nx-recording-upstream: \(sequence)\r\n\r\n\(body)"
                    context.write(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
                }
            } catch {
                failed = true
                upstream.failed(connection, error.description)
                let response = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in channel.close(promise: nil) }
            }
            let unparsed = pending
            upstream.update(connection) { $0.unparsed = unparsed }
            context.flush()
        }

        func channelInactive(context: ChannelHandlerContext) {
            upstream.update(connection) { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// Records one HTTP/2 stream's header block and DATA, and answers it once it ends.
    private final class HTTP2RecordingStreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload
        let upstream: RecordingUpstream
        let connection: Int
        private var block: [(name: String, value: String)]?
        private var body: [UInt8] = []
        private var answered = false

        init(upstream: RecordingUpstream, connection: Int) {
            self.upstream = upstream
            self.connection = connection
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                if block == nil {
                    block = headers.headers.map { ($0.name, $0.value) }
                }
                if headers.endStream { finish(context) }
            case .data(let data):
                if case .byteBuffer(let buffer) = data.data {
                    body.append(contentsOf: buffer.readableBytesView)
                }
                if data.endStream { finish(context) }
            default:
                break
            }
        }

        private func finish(_ context: ChannelHandlerContext) {
            guard !answered, let block else { return }
            answered = true
            let pseudo = block.filter { $0.name.hasPrefix(":") }
            let regular = block.filter { !$0.name.hasPrefix(":") }
            let method = pseudo.first { $0.name == ":method" }?.value ?? ""
            let connection = self.connection
            let body = self.body
            let sequence = upstream.record { sequence in
                RecordedRequest(
                    sequence: sequence, connection: connection, http2: true, method: method, target: pseudo.first { $0.name == ":path" }?.value ?? "",
                    headers: regular, pseudoHeaders: pseudo, headerBlock: block, body: body, framing: .http2)
            }
            let head = HPACKHeaders([(":status", "200"), ("content-type", "text/plain"), ("content-length", "2"), ("x-recording-upstream", "\(sequence)")])
            if method == "HEAD" {
                context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: head, endStream: true))), promise: nil)
            } else {
                context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "ok")), endStream: true))), promise: nil)
            }
        }
    }
}

/// The recording upstream could not start.
struct RecordingUpstreamError: Error, CustomStringConvertible {
    let description: String
}
