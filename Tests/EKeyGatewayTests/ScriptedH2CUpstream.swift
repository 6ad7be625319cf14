import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Testing

/// A raw h2c upstream (NIOHTTP2, no framework) with scripted behaviour that legitimate
/// HTTP/2 servers show: it refuses the very first stream it sees, in one of the two ways
/// RFC 9113 §8.7 marks as "not processed", or it answers every request on its HEADERS,
/// without reading the body, and then resets the stream with NO_ERROR (RFC 9113 §8.1;
/// nginx `return` does this on every request with a body).
/// Every stream it does not refuse gets 200 `ok`. It counts what it refused and answered.
final class ScriptedH2CUpstream: Sendable {
    enum Script: Sendable, CustomTestStringConvertible {
        /// RST_STREAM with REFUSED_STREAM on the stream.
        case refusedStream
        /// GOAWAY with last stream ID 0 on the connection, which is then closed.
        case goAway
        /// No refusal: every stream is answered before its body is read, then reset with NO_ERROR.
        case resetAfterAnswer

        var testDescription: String {
            switch self {
            case .refusedStream: "REFUSED_STREAM"
            case .goAway: "GOAWAY"
            case .resetAfterAnswer: "early answer + RST_STREAM(NO_ERROR)"
            }
        }
    }

    fileprivate let script: Script
    private let counts = NIOLockedValueBox((refused: 0, answered: 0))
    private let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

    init(script: Script) {
        self.script = script
    }

    var refused: Int { counts.withLockedValue { $0.refused } }
    var answered: Int { counts.withLockedValue { $0.answered } }

    /// Listens on a free loopback port and returns it.
    func start() async throws -> Int {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The gateway resets each stream it stops sending on after an early
                    // answer (RST_STREAM CANCEL); like nginx, this upstream tolerates that,
                    // where NIOHTTP2's defaults would GOAWAY after 200 resets.
                    var connection = NIOHTTP2Handler.ConnectionConfiguration()
                    connection.maximumConnectionGlitches = 100_000
                    var streams = NIOHTTP2Handler.StreamConfiguration()
                    streams.streamResetFrameRateLimit.maximumCount = 100_000
                    streams.streamErrorRateLimit.maximumCount = 100_000
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(mode: .server, connectionConfiguration: connection, streamConfiguration: streams) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(StreamHandler(upstream: self))
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLockedValue { $0 = server }
        return server.localAddress!.port!
    }

    func stop() async {
        try? await channel.withLockedValue { $0 }?.close()
    }

    /// Whether this stream is the one to refuse (the first of all).
    fileprivate func decide() -> Script? {
        counts.withLockedValue { counts in
            if script != .resetAfterAnswer, counts.refused == 0 && counts.answered == 0 {
                counts.refused += 1
                return script
            }
            counts.answered += 1
            return nil
        }
    }

    private final class StreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        let upstream: ScriptedH2CUpstream

        init(upstream: ScriptedH2CUpstream) {
            self.upstream = upstream
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers) where headers.endStream || upstream.script == .resetAfterAnswer:
                respond(context)
            case .data(let data) where data.endStream && upstream.script != .resetAfterAnswer:
                respond(context)
            default:
                break
            }
        }

        private func respond(_ context: ChannelHandlerContext) {
            switch upstream.decide() {
            case .refusedStream:
                context.writeAndFlush(wrapOutboundOut(.rstStream(.refusedStream)), promise: nil)
            case .goAway:
                let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil))
                let connection = context.channel.parent!
                connection.writeAndFlush(goAway).whenComplete { _ in connection.close(promise: nil) }
            case .resetAfterAnswer, nil:
                let head = HPACKHeaders([(":status", "200"), ("content-type", "text/plain"), ("content-length", "2")])
                context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "ok")), endStream: true))), promise: nil)
                if upstream.script == .resetAfterAnswer {
                    // Once the response is on the wire (a reset written in this read cycle
                    // would drop the DATA still buffered here), as nginx does.
                    let reset = NIOLoopBound((context, self), eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: .milliseconds(5)) {
                        let (context, handler) = reset.value
                        context.writeAndFlush(handler.wrapOutboundOut(.rstStream(.noError)), promise: nil)
                    }
                }
            }
        }
    }
}
