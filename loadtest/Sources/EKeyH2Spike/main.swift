import ArgumentParser
import CNGHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// `ekey-h2-spike`: the data-path spike. A TLS 1.3 HTTP/2 server that answers every request
/// with the gateway's refusal of a request without a token (401, the same header fields
/// and JSON body), handled at the connection level with no per-stream child channel, in
/// one of two engines:
///
/// - `nio`: SwiftNIO's `NIOHTTP2Handler` with no stream multiplexer; its `HTTP2Frame`s go
///   to one connection handler, which answers on the event loop.
/// - `nghttp2`: libnghttp2's session fed the decrypted bytes (`nghttp2_session_mem_recv`)
///   and drained into one buffer per read burst (`nghttp2_session_mem_send`).
///
/// `loadtest/run` measures both against the gateway's own refusal path and nginx.
@main
struct EKeyH2Spike: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-h2-spike",
        abstract: "Answer every HTTP/2 request with the gateway's 401 refusal, at the connection level (a measurement spike).")

    enum Engine: String, ExpressibleByArgument, CaseIterable {
        case nio
        case nghttp2
    }

    @Option(help: "HTTP/2 engine: \(Engine.allCases.map(\.rawValue).joined(separator: ", ")).")
    var engine: Engine

    @Option(help: "Listen port on 127.0.0.1.")
    var port: Int

    @Option(help: "Server certificate chain (PEM).")
    var cert: String

    @Option(help: "Server private key (PEM).")
    var key: String

    @Option(help: "Event loop threads.")
    var threads: Int = 1

    func run() throws {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        tls.minimumTLSVersion = .tlsv13
        tls.applicationProtocols = ["h2"]
        let sslContext = try NIOSSLContext(configuration: tls)
        let engine = self.engine
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = channel.pipeline.syncOperations
                    try handlers.addHandler(NIOSSLServerHandler(context: sslContext))
                    switch engine {
                    case .nio:
                        try handlers.addHandler(
                            NIOHTTP2Handler(mode: .server, initialSettings: [HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000)]))
                        try handlers.addHandler(FrameRefuser())
                    case .nghttp2:
                        try handlers.addHandler(NGHTTP2Refuser())
                    }
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
        print("ekey-h2-spike (\(engine.rawValue)) listening on 127.0.0.1:\(port)")
        try channel.closeFuture.wait()
    }
}

/// The gateway's answer to a request without a token.
enum Refusal {
    static let body: [UInt8] = Array(
        #"{"error":"invalid_request","error_description":"no E-Key in the Authorization header; send 'Authorization: DPoP <token>' with a DPoP proof, or 'Authorization: EKey <token>' over mTLS"}"#.utf8)
    static let fields: [(String, String)] = [
        (":status", "401"), ("www-authenticate", #"DPoP algs="ES256 EdDSA", EKey"#), ("content-type", "application/json"),
        ("cache-control", "no-store"), ("content-length", String(body.count)), ("server", "ekey-gateway"),
    ]
}

/// Answers each stream once its request has ended, from `HTTP2Frame`s on the connection.
final class FrameRefuser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let headers = HPACKHeaders(Refusal.fields)
    private var body = ByteBuffer(bytes: Refusal.body)
    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let ended: Bool
        switch frame.payload {
        case .headers(let headers): ended = headers.endStream
        case .data(let data): ended = data.endStream
        default: ended = false
        }
        guard ended else { return }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .headers(.init(headers: headers)))), promise: nil)
        context.write(
            wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .data(.init(data: .byteBuffer(body), endStream: true)))),
            promise: nil)
        answered = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if answered {
            answered = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }
}

/// Runs a libnghttp2 server session over the decrypted byte stream of one connection.
final class NGHTTP2Refuser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: OpaquePointer?
    /// Streams whose request ended during the current `channelRead`, answered right after it.
    fileprivate var ended: [Int32] = []
    /// The response's header fields, as `nghttp2_nv`s over bytes this handler owns.
    private let fields: UnsafeMutableBufferPointer<nghttp2_nv>

    init() {
        fields = .allocate(capacity: Refusal.fields.count)
        for (index, (name, value)) in Refusal.fields.enumerated() {
            fields[index] = nghttp2_nv(
                name: Self.copy(name), value: Self.copy(value), namelen: name.utf8.count, valuelen: value.utf8.count,
                flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
    }

    deinit {
        for field in fields {
            field.name.deallocate()
            field.value.deallocate()
        }
        fields.deallocate()
    }

    private static func copy(_ text: String) -> UnsafeMutablePointer<UInt8> {
        let bytes = Array(text.utf8)
        let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        pointer.initialize(from: bytes, count: bytes.count)
        return pointer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, let userData else { return 0 }
            let type = Int(frame.pointee.hd.type)
            let flags = frame.pointee.hd.flags
            if (type == Int(NGHTTP2_HEADERS.rawValue) || type == Int(NGHTTP2_DATA.rawValue)),
                flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            {
                Unmanaged<NGHTTP2Refuser>.fromOpaque(userData).takeUnretainedValue().ended.append(frame.pointee.hd.stream_id)
            }
            return 0
        }
        nghttp2_session_server_new(&session, callbacks, Unmanaged.passUnretained(self).toOpaque())
        nghttp2_session_callbacks_del(callbacks)
        var settings = [nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: 1000)]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        nghttp2_session_del(session)
        session = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let consumed = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        guard consumed >= 0 else {
            context.close(promise: nil)
            return
        }
        for stream in ended {
            respond(on: stream)
        }
        ended.removeAll(keepingCapacity: true)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        var output = context.channel.allocator.buffer(capacity: 0)
        while true {
            var chunk: UnsafePointer<UInt8>?
            let length = nghttp2_session_mem_send(session, &chunk)
            guard length > 0, let chunk else { break }
            output.writeBytes(UnsafeRawBufferPointer(start: chunk, count: length))
        }
        if output.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(output), promise: nil)
        }
        if nghttp2_session_want_read(session) == 0, nghttp2_session_want_write(session) == 0 {
            context.close(promise: nil)
        }
        context.fireChannelReadComplete()
    }

    private func respond(on stream: Int32) {
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { _, _, buffer, length, flags, _, _ in
                let count = min(length, Refusal.body.count)
                Refusal.body.withUnsafeBufferPointer { body in
                    buffer?.update(from: body.baseAddress!, count: count)
                }
                flags?.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
                return count
            })
        nghttp2_submit_response(session, stream, fields.baseAddress, fields.count, &provider)
    }
}
