import EKeyServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOPosix
import NIOSSL

/// Keeps every byte a raw test connection receives, and whether the peer closed it.
final class RawByteRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received = NIOLockedValueBox<[UInt8]>([])
    let closed = NIOLockedValueBox(false)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        received.withLockedValue { $0.append(contentsOf: buffer.readableBytesView) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.withLockedValue { $0 = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A TLS connection to the gateway with a chosen ALPN list that writes hand-made bytes and
/// records every byte the gateway sends back and whether it closed: the HTTP/1.1 sibling
/// of ``RawHTTP2Connection``, also used for HTTP/2 with the response frames decoded.
final class RawTLSClient: Sendable {
    private let channel: any Channel
    private let recorder: RawByteRecorder

    private init(channel: any Channel, recorder: RawByteRecorder) {
        self.channel = channel
        self.recorder = recorder
    }

    /// Connects to `port` on loopback with TLS (server name `localhost`) and ALPN `alpn`;
    /// `handshake: false` opens a bare TCP connection that never starts TLS.
    static func open(port: Int, caFile: String, alpn: [String], handshake: Bool = true) async throws -> RawTLSClient {
        var tls = try TLSSetup.client(caFile: caFile, certificateFile: nil, keyFile: nil)
        tls.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: tls)
        let recorder = RawByteRecorder()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if handshake {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    }
                    try channel.pipeline.syncOperations.addHandler(recorder)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawTLSClient(channel: channel, recorder: recorder)
    }

    /// Writes `bytes`; `false` once the gateway has closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) async -> Bool {
        do {
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
            return true
        } catch {
            return false
        }
    }

    var received: [UInt8] { recorder.received.withLockedValue { $0 } }
    var isClosed: Bool { recorder.closed.withLockedValue { $0 } }

    /// Waits until `done(received, closed)` holds or `timeout` passes; returns whether it held.
    func wait(timeout: Duration, until done: ([UInt8], Bool) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if done(received, isClosed) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return done(received, isClosed)
    }

    /// Closes the connection without waiting for the gateway's TLS close_notify (NIOSSL would
    /// wait up to 5 s for it).
    func close() {
        channel.close(promise: nil)
    }
}

/// What the gateway did with one hand-made request.
enum DownstreamOutcome: Sendable, CustomStringConvertible {
    /// Complete responses, by status, in order.
    case answered([Int])
    /// HTTP/2: the stream was reset with this error code, or the connection ended with GOAWAY.
    case reset(String)
    /// The connection closed without a complete response.
    case closed
    /// No complete response within the deadline (the connection was then closed by the test).
    case noAnswer

    /// The statuses answered 2xx: requests the gateway verified and forwarded.
    var forwardedCount: Int {
        if case .answered(let statuses) = self { return statuses.filter { (200..<300).contains($0) }.count }
        return 0
    }

    var statuses: [Int] {
        if case .answered(let statuses) = self { return statuses }
        return []
    }

    var description: String {
        switch self {
        case .answered(let statuses): statuses.map(String.init).joined(separator: "+")
        case .reset(let reason): "reset (\(reason))"
        case .closed: "closed without a response"
        case .noAnswer: "no answer"
        }
    }
}

/// Sends hand-made HTTP/1.1 bytes to the gateway over TLS with ALPN `http/1.1`.
enum HTTP1Downstream {
    /// One response as the test client read it.
    struct Response {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]
    }

    /// Sends `bytes` on a new connection and reads responses until the gateway closes it, or
    /// `linger` passes without a byte after a complete response, or `timeout` passes.
    static func exchange(_ bytes: [UInt8], port: Int, caFile: String, timeout: Duration = .seconds(3), linger: Duration = .milliseconds(60)) async throws
        -> DownstreamOutcome
    {
        let client = try await RawTLSClient.open(port: port, caFile: caFile, alpn: ["http/1.1"])
        await client.send(bytes)
        let deadline = ContinuousClock.now + timeout
        var lastCount = -1
        var lastChange = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let received = client.received
            let closed = client.isClosed
            if received.count != lastCount {
                lastCount = received.count
                lastChange = .now
            }
            let responses = parseResponses(received, closed: closed)
            if closed { break }
            if !responses.complete.isEmpty, !responses.partial, ContinuousClock.now - lastChange >= linger { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let closed = client.isClosed
        let responses = parseResponses(client.received, closed: closed)
        client.close()
        if !responses.complete.isEmpty { return .answered(responses.complete.map(\.status)) }
        return closed ? .closed : .noAnswer
    }

    /// The complete responses in `bytes`, and whether an incomplete one follows them.
    static func parseResponses(_ bytes: [UInt8], closed: Bool) -> (complete: [Response], partial: Bool) {
        var responses: [Response] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let (response, consumed) = parseResponse(rest, closed: closed) else { return (responses, true) }
            responses.append(response)
            rest = rest.dropFirst(consumed)
        }
        return (responses, false)
    }

    /// A lenient reader for the gateway's responses: `Content-Length`, chunked, or to the close.
    static func parseResponse(_ bytes: ArraySlice<UInt8>, closed: Bool) -> (Response, Int)? {
        let separator: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
        guard let headEnd = bytes.firstRange(of: separator) else { return nil }
        let lines = bytes[bytes.startIndex..<headEnd.lowerBound].split(separator: 0x0A).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
        }
        guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1."), statusLine.utf8.count >= 12,
            let status = Int(statusLine.dropFirst(9).prefix(3))
        else { return nil }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingBlanks())
        }
        let bodyStart = headEnd.upperBound
        let headLength = bodyStart - bytes.startIndex
        if (100..<200).contains(status) || status == 204 || status == 304 {
            return (Response(status: status, headers: headers, body: []), headLength)
        }
        if let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }) {
            guard bytes.endIndex - bodyStart >= length else { return nil }
            return (Response(status: status, headers: headers, body: Array(bytes[bodyStart..<bodyStart + length])), headLength + length)
        }
        if headers.contains(where: { $0.name.lowercased() == "transfer-encoding" }) {
            var reader = StrictHTTP1Parser.LineReader(bytes: bytes, position: bodyStart)
            guard let decoded = try? reader.chunkedBody() else { return nil }
            return (Response(status: status, headers: headers, body: decoded.0), reader.position - bytes.startIndex)
        }
        guard closed else { return nil }
        return (Response(status: status, headers: headers, body: Array(bytes[bodyStart...])), bytes.count)
    }
}

/// Sends one hand-made HTTP/2 request (stream 1) to the gateway over TLS with ALPN `h2`,
/// with header blocks of literal fields (any name, value, order or duplicate).
enum HTTP2Downstream {
    /// The request: its header block in order (pseudo-header fields included) and its DATA frames.
    struct Request: Sendable {
        var fields: [(String, String)]
        var data: [[UInt8]] = []
    }

    /// The frames for `request` on stream 1: HEADERS (END_STREAM when there is no DATA), then DATA.
    static func frames(_ request: Request) -> [UInt8] {
        typealias Raw = RawHTTP2Connection
        var block: [UInt8] = []
        for (name, value) in request.fields {
            block += [0x00] + Raw.hpackInteger(name.utf8.count, prefixBits: 7) + Array(name.utf8) + Raw.hpackInteger(value.utf8.count, prefixBits: 7) + Array(value.utf8)
        }
        var frames = Raw.frame(type: 0x1, flags: 0x4 | (request.data.isEmpty ? 0x1 : 0), stream: 1, payload: block)
        for (index, chunk) in request.data.enumerated() {
            frames += Raw.frame(type: 0x0, flags: index == request.data.count - 1 ? 0x1 : 0, stream: 1, payload: chunk)
        }
        return frames
    }

    /// Sends `request` on a new connection and waits for stream 1 to end, be reset, or the connection to end.
    static func exchange(_ request: Request, port: Int, caFile: String, timeout: Duration = .seconds(3)) async throws -> DownstreamOutcome {
        let client = try await RawTLSClient.open(port: port, caFile: caFile, alpn: ["h2"])
        await client.send(RawHTTP2Connection.preface + RawHTTP2Connection.settings() + frames(request))
        var outcome: DownstreamOutcome?
        _ = await client.wait(timeout: timeout) { received, closed in
            outcome = streamOutcome(received, closed: closed)
            return outcome != nil
        }
        client.close()
        return outcome ?? .noAnswer
    }

    /// Stream 1's fate in the frames received so far; `nil` while it is still open.
    static func streamOutcome(_ bytes: [UInt8], closed: Bool) -> DownstreamOutcome? {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var rest = bytes[...]
        var block: [UInt8] = []
        var status: Int?
        while rest.count >= 9 {
            let start = rest.startIndex
            let length = Int(rest[start]) << 16 | Int(rest[start + 1]) << 8 | Int(rest[start + 2])
            guard rest.count >= 9 + length else { break }
            let type = rest[start + 3]
            let flags = rest[start + 4]
            let stream = (UInt32(rest[start + 5]) << 24 | UInt32(rest[start + 6]) << 16 | UInt32(rest[start + 7]) << 8 | UInt32(rest[start + 8])) & 0x7FFF_FFFF
            var payload = Array(rest[(start + 9)..<(start + 9 + length)])
            rest = rest.dropFirst(9 + length)
            switch type {
            case 0x1, 0x9:
                if type == 0x1 {
                    let padding = flags & 0x8 != 0 ? Int(payload.first ?? 0) : 0
                    payload = Array(payload.dropFirst((flags & 0x8 != 0 ? 1 : 0) + (flags & 0x20 != 0 ? 5 : 0)).dropLast(padding))
                }
                block += payload
                guard flags & 0x4 != 0 else { continue }
                var buffer = ByteBuffer(bytes: block)
                block = []
                guard let headers = try? decoder.decodeHeaders(from: &buffer) else { return .reset("undecodable response headers") }
                if stream == 1, status == nil, let value = headers.first(name: ":status").flatMap(Int.init) {
                    status = value
                }
                if stream == 1, flags & 0x1 != 0, let status { return .answered([status]) }
            case 0x0:
                if stream == 1, flags & 0x1 != 0, let status { return .answered([status]) }
            case 0x3 where stream == 1:
                let code = payload.count >= 4 ? UInt32(payload[0]) << 24 | UInt32(payload[1]) << 16 | UInt32(payload[2]) << 8 | UInt32(payload[3]) : 0
                return .reset("RST_STREAM \(code)")
            case 0x7:
                return .reset("GOAWAY")
            default:
                break
            }
        }
        return closed ? .closed : nil
    }
}
