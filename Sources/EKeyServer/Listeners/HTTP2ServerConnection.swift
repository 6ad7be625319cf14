import CNGHTTP2
import EKeyProtocol
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// One HTTP/2 connection served by a libnghttp2 session, with no channel per stream: the
/// decrypted bytes go into the session, its frames come back out in one write per read
/// burst, and each request is handed to the responder when its header block completes.
///
/// What libnghttp2 enforces: the frame layer (sizes, stream states, HPACK), the
/// RFC 9113 §8 message rules (pseudo-header fields, connection-specific fields,
/// `content-length` against the DATA received), and flood limits (reset, SETTINGS, PING
/// and CONTINUATION floods end the connection). What this handler adds: request bodies
/// only get flow-control window as their reader takes them (``InboundBodyStream``'s
/// back-pressure), responses leave only while the channel is writable, header lists above
/// ``ConnectionLimits/maxHeaderListSize`` reset their stream, a stream whose request body
/// stops for the idle limit is reset, a connection without streams for the idle limit gets
/// `GOAWAY` and is closed, and at shutdown (``ChannelShouldQuiesceEvent``) the streams in
/// flight finish behind a `GOAWAY` before the connection closes.
final class HTTP2ServerConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Streams a client may have open at once (SwiftNIO's default, which the listener had before).
    static let maxConcurrentStreams: UInt32 = 100
    /// Window a stream's request body starts with, and the connection's window for all bodies.
    static let streamWindow: Int32 = 256 * 1024
    static let connectionWindow: Int32 = 1024 * 1024
    /// Response bytes queued for a stream above which its writer waits.
    static let outboundHighWater = 64 * 1024

    private let responder: InlineService
    private var serverName: String { responder.serverName }
    private var logger: Logger { responder.logger }
    /// Seconds a stream's request body or a connection without streams may stay silent.
    private let idleSeconds: Int

    private var session: OpaquePointer?
    private var context: ChannelHandlerContext?
    private var peer: PeerIdentity?
    private var streams: [Int32: Stream] = [:]
    /// Requests whose header block completed during the current read, started after it.
    private var completedHeads: [(id: Int32, body: InboundBodyStream)] = []
    /// Streams whose handler waits for the body, and whose body ended (or outgrew the
    /// handler's limit) in this read.
    private var bodiesToDecide: [Int32] = []
    private var inRead = false
    private var flushScheduled = false
    private var quiescing = false
    /// The client sent its TLS `close_notify` or TCP FIN: the connection ends with its last stream.
    private var clientFinished = false
    private var closing = false
    private var ticker: RepeatedTask?
    /// Ticks of one second since the connection began; activity is stamped in ticks.
    private var tick = 0
    private var idleSince = 0

    /// The state of one stream: its request while it arrives, its response while it leaves.
    final class Stream {
        var method: String?
        var scheme: String?
        var authority: String?
        var path: String?
        var fields = HTTPFields()
        var headerBytes = 0
        var headerListTooLarge = false
        /// The first field RFC 9113 §8.2 forbids (a value with leading or trailing space, a
        /// control character): the request is answered 400 and never reaches the responder.
        var malformedField: String?
        /// The request's header block is complete; a later one is its trailer section.
        var headComplete = false
        var body: InboundBodyStream?
        var requestEnded = false
        var lastActivity: Int
        /// Received body bytes whose window is given back when the reader catches up.
        var unconsumed = 0
        /// The response head went to the session.
        var responseSubmitted = false
        var outbound = CircularBuffer<ByteBuffer>()
        var outboundBytes = 0
        var outboundEnded = false
        var trailers: HTTPFields?
        var deferred = false
        var drained: [EventLoopPromise<Void>] = []
        /// The handler answers once the body has arrived (``InlineAnswer/afterBody(upTo:_:)``).
        var awaitingBody: AwaitingBody?

        struct AwaitingBody {
            let limit: Int
            let decide: @Sendable (ByteBuffer?) -> InlineAnswer
            let head: HTTPRequest
            let body: InboundBodyStream
        }

        init(tick: Int) {
            lastActivity = tick
        }
    }

    init(responder: InlineService, idleLimit: Duration) {
        self.responder = responder
        self.idleSeconds = Int(idleLimit.components.seconds)
    }

    // MARK: - Session set-up

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = InlineRequestOrigin.peerIdentity(of: context.channel)
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame, let userData else { return 0 }
            return HTTP2ServerConnection.from(userData).beginHeaders(frame.pointee)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value, let userData else { return 0 }
            return HTTP2ServerConnection.from(userData).header(
                frame.pointee, name: UnsafeBufferPointer(start: name, count: nameLength), value: UnsafeBufferPointer(start: value, count: valueLength))
        }
        nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks) { _, frame, name, nameLength, _, _, _, userData in
            guard let frame, let name, let userData else { return 0 }
            HTTP2ServerConnection.from(userData).invalidHeader(frame.pointee, name: UnsafeBufferPointer(start: name, count: nameLength))
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, let userData else { return 0 }
            HTTP2ServerConnection.from(userData).frameReceived(frame.pointee)
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            guard let data, let userData else { return 0 }
            HTTP2ServerConnection.from(userData).bodyChunk(streamID, UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            guard let userData else { return 0 }
            HTTP2ServerConnection.from(userData).streamClosed(streamID, errorCode: errorCode)
            return 0
        }
        var options: OpaquePointer?
        nghttp2_option_new(&options)
        defer { nghttp2_option_del(options) }
        nghttp2_option_set_no_auto_window_update(options, 1)
        nghttp2_session_server_new2(&session, callbacks, Unmanaged.passUnretained(self).toOpaque(), options)
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: Self.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(Self.streamWindow)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(ConnectionLimits.maxHeaderListSize)),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Self.connectionWindow)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            loopBound.value.onTick()
        }
        flushOutput()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
        ticker = nil
        failAllStreams()
        nghttp2_session_del(session)
        session = nil
        self.context = nil
    }

    private static func from(_ userData: UnsafeMutableRawPointer) -> HTTP2ServerConnection {
        Unmanaged<HTTP2ServerConnection>.fromOpaque(userData).takeUnretainedValue()
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session else { return }
        let bytes = unwrapInboundIn(data)
        inRead = true
        let consumed = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        inRead = false
        if consumed < 0 {
            logger.debug("HTTP/2 connection error", metadata: ["error": .string(String(cString: nghttp2_strerror(Int32(consumed))))])
            closing = true
        }
        for (id, body) in completedHeads {
            start(id, body: body, context: context)
        }
        completedHeads.removeAll(keepingCapacity: true)
        for id in bodiesToDecide {
            guard let stream = streams[id], let awaiting = stream.awaitingBody else { continue }
            stream.awaitingBody = nil
            proceed(id, .afterBody(upTo: awaiting.limit, awaiting.decide), head: awaiting.head, body: awaiting.body, context: context)
        }
        bodiesToDecide.removeAll(keepingCapacity: true)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flushOutput() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAllStreams()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 connection closed on error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiesce()
            return
        }
        if case ChannelEvent.inputClosed = event {
            clientFinishedSending()
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The client sends nothing more (its TLS `close_notify` or TCP FIN): no stream can
    /// start, and a request still arriving can never end, so that stream is reset; the
    /// answers already in the making go out, then the connection closes. Without this a
    /// client that closes politely leaves its connection open until the idle limit.
    private func clientFinishedSending() {
        guard let session, !clientFinished else { return }
        clientFinished = true
        for (id, stream) in streams where !stream.requestEnded {
            stream.body?.finish(ChannelError.eof)
            stream.body = nil
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, NGHTTP2_CANCEL.rawValue)
        }
        if streams.isEmpty { closing = true }
        flushOutput()
    }

    /// Shutdown: new streams are refused with `GOAWAY`, the ones in flight finish, then the connection closes.
    private func quiesce() {
        guard !quiescing, let session else { return }
        quiescing = true
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR.rawValue, nil, 0)
        if streams.isEmpty { closing = true }
        flushOutput()
    }

    private func beginHeaders(_ frame: nghttp2_frame) -> Int32 {
        guard frame.hd.type == UInt8(NGHTTP2_HEADERS.rawValue), frame.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
        streams[frame.hd.stream_id] = Stream(tick: tick)
        return 0
    }

    private func header(_ frame: nghttp2_frame, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard let stream = streams[frame.hd.stream_id], !stream.headComplete else {
            return 0  // a trailer section: its fields are not forwarded
        }
        stream.headerBytes += name.count + value.count + 32
        if stream.headerBytes > ConnectionLimits.maxHeaderListSize {
            stream.headerListTooLarge = true
            return 0
        }
        let valueText = String(decoding: value, as: UTF8.self)
        if name.first == UInt8(ascii: ":") {
            switch String(decoding: name, as: UTF8.self) {
            case ":method": stream.method = valueText
            case ":scheme": stream.scheme = valueText
            case ":authority": stream.authority = valueText
            case ":path": stream.path = valueText
            default: break  // libnghttp2 has already refused any other pseudo-header field
            }
            return 0
        }
        guard let fieldName = HTTPField.Name(String(decoding: name, as: UTF8.self)) else {
            return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        stream.fields.append(HTTPField(name: fieldName, value: valueText))
        return 0
    }

    private func invalidHeader(_ frame: nghttp2_frame, name: UnsafeBufferPointer<UInt8>) {
        guard let stream = streams[frame.hd.stream_id], !stream.headComplete, stream.malformedField == nil else { return }
        stream.malformedField = String(decoding: name.prefix(64), as: UTF8.self)
    }

    private func frameReceived(_ frame: nghttp2_frame) {
        let id = frame.hd.stream_id
        let endStream = frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(frame.hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = streams[id] else { return }
            stream.lastActivity = tick
            if frame.headers.cat == NGHTTP2_HCAT_REQUEST {
                stream.headComplete = true
                stream.requestEnded = endStream
                let body = makeBody(id)
                if endStream {
                    body.finish()
                } else {
                    stream.body = body
                }
                completedHeads.append((id, body))
            } else if endStream {
                endRequest(id, stream)
            }
        case NGHTTP2_DATA.rawValue:
            guard endStream, let stream = streams[id] else { return }
            endRequest(id, stream)
        default:
            break
        }
    }

    private func endRequest(_ id: Int32, _ stream: Stream) {
        stream.requestEnded = true
        stream.body?.finish()
        stream.body = nil
        if stream.awaitingBody != nil { bodiesToDecide.append(id) }
    }

    private func bodyChunk(_ id: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[id], let body = stream.body else {
            nghttp2_session_consume(session, id, bytes.count)
            return
        }
        stream.lastActivity = tick
        var buffer = context!.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        body.append(buffer)
        if let awaiting = stream.awaitingBody, body.bufferedByteCount > awaiting.limit, !bodiesToDecide.contains(id) {
            bodiesToDecide.append(id)
        }
        if body.isPaused {
            stream.unconsumed += bytes.count
        } else {
            nghttp2_session_consume(session, id, bytes.count + stream.unconsumed)
            stream.unconsumed = 0
        }
    }

    /// The body's reader caught up: the window held back is given to the client.
    private func resumeBody(_ id: Int32) {
        guard let stream = streams[id], stream.unconsumed > 0, !(stream.body?.isPaused ?? false) else { return }
        nghttp2_session_consume(session, id, stream.unconsumed)
        stream.unconsumed = 0
        scheduleFlush()
    }

    private func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        if !stream.requestEnded {
            stream.body?.finish(errorCode == NGHTTP2_NO_ERROR.rawValue ? ResponseCompleteError() : HTTP2StreamResetError(code: errorCode))
        }
        stream.body = nil
        let drained = stream.drained
        stream.drained.removeAll()
        for promise in drained { promise.fail(HTTP2StreamResetError(code: errorCode)) }
        if streams.isEmpty {
            idleSince = tick
            if quiescing || clientFinished { closing = true }
        }
    }

    private func failAllStreams() {
        let open = streams
        streams.removeAll()
        for (_, stream) in open {
            stream.body?.finish(ChannelError.eof)
            stream.body = nil
            for promise in stream.drained { promise.fail(ChannelError.ioOnClosedChannel) }
            stream.drained.removeAll()
        }
    }

    // MARK: - Requests

    /// The request body's stream; when its reader catches up, the window held back is given.
    private func makeBody(_ id: Int32) -> InboundBodyStream {
        let eventLoop = context!.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        return InboundBodyStream {
            eventLoop.execute { loopBound.value.resumeBody(id) }
        }
    }

    private func start(_ id: Int32, body: InboundBodyStream, context: ChannelHandlerContext) {
        guard let stream = streams[id] else { return }
        guard !stream.headerListTooLarge else {
            refuse(
                id, status: .requestHeaderFieldsTooLarge,
                description: "the request's header fields exceed \(ConnectionLimits.maxHeaderListSize) bytes; send fewer or shorter fields")
            return
        }
        if let field = stream.malformedField {
            refuse(
                id, status: .badRequest,
                description: "the header field '\(field)' is not valid HTTP/2 (RFC 9113 section 8.2: no leading or trailing whitespace, no control characters); fix the client")
            return
        }
        guard let methodText = stream.method, let method = HTTPRequest.Method(methodText) else {
            reset(id, code: NGHTTP2_PROTOCOL_ERROR.rawValue)
            return
        }
        let head = HTTPRequest(method: method, scheme: stream.scheme, authority: stream.authority, path: stream.path, headerFields: stream.fields)
        stream.fields = HTTPFields()
        let origin = InlineRequestOrigin(connection: context.channel, overHTTP2: true, peer: peer, body: body)
        let answer = responder.handle(head, origin)
        if case .afterBody(let limit, let decide) = answer, body.completeBody(upTo: limit) == nil, !body.hasEnded,
            body.bufferedByteCount <= limit
        {
            // Decided when the body has ended (or outgrown the limit), after that read.
            stream.awaitingBody = .init(limit: limit, decide: decide, head: head, body: body)
            return
        }
        proceed(id, answer, head: head, body: body, context: context)
    }

    /// Carries out `answer` for stream `id`: writes an immediate response, or starts the
    /// responder's task; an answer that waits for the body is decided with it now.
    private func proceed(_ id: Int32, _ answer: InlineAnswer, head: HTTPRequest, body: InboundBodyStream, context: ChannelHandlerContext) {
        let respond: @Sendable (Request) async throws -> Response
        switch answer.decided(with: body) {
        case .immediate(let response, let payload):
            send(id, head: responder.stamped(response, length: payload.readableBytes), buffer: payload, end: true, trailers: nil, drained: nil)
            return
        case .deferred(let deferred):
            respond = deferred
        case .afterBody:
            preconditionFailure("InlineAnswer.decided(with:) never answers afterBody")
        }
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let request = Request(head: head, body: RequestBody(asyncSequence: body))
        let responder = self.responder
        Task {
            let response = await responder.answer(request, by: respond)
            let writer = HTTP2StreamResponseWriter(
                connection: loopBound, eventLoop: eventLoop, streamID: id, head: response.head, remaining: response.body.contentLength)
            do {
                try await response.body.write(writer)
            } catch {
                eventLoop.execute { loopBound.value.reset(id, code: NGHTTP2_INTERNAL_ERROR.rawValue) }
            }
        }
    }

    /// Answers a request that never reaches the responder with a JSON `invalid_request` error.
    private func refuse(_ id: Int32, status: HTTPResponse.Status, description: String) {
        let payload = ByteBuffer(bytes: EKeyError(.invalidRequest, description, status: status.code).body.serializedBytes())
        let head = HTTPResponse(
            status: status,
            headerFields: [
                .contentType: "application/json", .contentLength: String(payload.readableBytes), .cacheControl: "no-store",
                .date: HTTPDate.now(), .server: serverName,
            ])
        send(id, head: head, buffer: payload, end: true, trailers: nil, drained: nil)
    }

    // MARK: - Responses (called on the event loop by HTTP2StreamResponseWriter)

    /// Queues `buffer` (and the head, first) on the stream; `drained` completes when the
    /// stream's queue is below the high-water mark, at once when it already is.
    func send(_ id: Int32, head: HTTPResponse?, buffer: ByteBuffer?, end: Bool, trailers: HTTPFields?, drained: EventLoopPromise<Void>?) {
        guard let stream = streams[id], session != nil else {
            drained?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if let buffer, buffer.readableBytes > 0 {
            stream.outbound.append(buffer)
            stream.outboundBytes += buffer.readableBytes
        }
        if end {
            stream.outboundEnded = true
            stream.trailers = trailers
            if !stream.requestEnded {
                // The answer is complete before the request: the rest of its body is read and
                // dropped (no RST_STREAM, which some clients report as a failed request), and
                // the stream idle limit still ends a client that stops sending it.
                stream.body?.finish(ResponseCompleteError())
                stream.body = nil
            }
        }
        if let head, !stream.responseSubmitted {
            submitResponse(id, stream: stream, head: head)
        } else if stream.deferred {
            stream.deferred = false
            nghttp2_session_resume_data(session, id)
        }
        if let drained {
            if stream.outboundBytes <= Self.outboundHighWater {
                drained.succeed()
            } else {
                stream.drained.append(drained)
            }
        }
        scheduleFlush()
    }

    func reset(_ id: Int32, code: UInt32) {
        guard streams[id] != nil, let session else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, code)
        scheduleFlush()
    }

    private func submitResponse(_ id: Int32, stream: Stream, head: HTTPResponse) {
        stream.responseSubmitted = true
        let bodyless = stream.outboundEnded && stream.outboundBytes == 0 && stream.trailers == nil
        Self.withNameValues(status: head.status.code, fields: head.headerFields) { nameValues in
            if bodyless {
                _ = nghttp2_submit_response(session, id, nameValues.baseAddress, nameValues.count, nil)
            } else {
                var provider = nghttp2_data_provider(
                    source: nghttp2_data_source(ptr: nil),
                    read_callback: { session, streamID, destination, length, flags, _, userData in
                        guard let userData, let destination, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                        return HTTP2ServerConnection.from(userData).readResponse(session, streamID, destination, length, flags)
                    })
                _ = nghttp2_submit_response(session, id, nameValues.baseAddress, nameValues.count, &provider)
            }
        }
    }

    /// libnghttp2 asks for up to `length` bytes of the stream's response body.
    private func readResponse(
        _ session: OpaquePointer?, _ id: Int32, _ destination: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[id] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        var written = 0
        while written < length, var buffer = stream.outbound.first {
            let count = min(length - written, buffer.readableBytes)
            buffer.withUnsafeReadableBytes { raw in
                (destination + written).update(from: raw.bindMemory(to: UInt8.self).baseAddress!, count: count)
            }
            buffer.moveReaderIndex(forwardBy: count)
            written += count
            stream.outboundBytes -= count
            if buffer.readableBytes == 0 {
                stream.outbound.removeFirst()
            } else {
                stream.outbound[stream.outbound.startIndex] = buffer
            }
        }
        if stream.outboundBytes <= Self.outboundHighWater, !stream.drained.isEmpty {
            let drained = stream.drained
            stream.drained.removeAll()
            for promise in drained { promise.succeed() }
        }
        if stream.outbound.isEmpty {
            if stream.outboundEnded {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = stream.trailers {
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    Self.withNameValues(status: nil, fields: trailers) { nameValues in
                        _ = nghttp2_submit_trailer(session, id, nameValues.baseAddress, nameValues.count)
                    }
                }
            } else if written == 0 {
                stream.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return written
    }

    /// Fields that HTTP/2 forbids (RFC 9113 §8.2.2); an HTTP/1.1 upstream's are dropped here.
    private static let connectionSpecific: Set<HTTPField.Name> = [
        .connection, .transferEncoding, .upgrade, HTTPField.Name("Keep-Alive")!, HTTPField.Name("Proxy-Connection")!,
    ]

    /// Calls `body` with `:status` (when given) and `fields` as `nghttp2_nv`s over one
    /// byte buffer; libnghttp2 copies them during the call.
    private static func withNameValues<Result>(
        status: Int?, fields: HTTPFields, _ body: (UnsafeMutableBufferPointer<nghttp2_nv>) -> Result
    ) -> Result {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        var spans: [(name: Range<Int>, value: Range<Int>)] = []
        spans.reserveCapacity(fields.count + 1)
        func add(_ name: String, _ value: String) {
            let nameStart = bytes.count
            bytes.append(contentsOf: name.utf8)
            let valueStart = bytes.count
            bytes.append(contentsOf: value.utf8)
            spans.append((nameStart..<valueStart, valueStart..<bytes.count))
        }
        if let status { add(":status", String(status)) }
        for field in fields where !connectionSpecific.contains(field.name) {
            add(field.name.canonicalName, field.value)
        }
        return bytes.withUnsafeMutableBufferPointer { storage in
            var nameValues = spans.map { span in
                nghttp2_nv(
                    name: storage.baseAddress! + span.name.lowerBound, value: storage.baseAddress! + span.value.lowerBound,
                    namelen: span.name.count, valuelen: span.value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            return nameValues.withUnsafeMutableBufferPointer { body($0) }
        }
    }

    // MARK: - Output

    /// Flushes once at the end of this event-loop turn (at once when inside a read, whose end flushes).
    private func scheduleFlush() {
        guard !inRead, !flushScheduled, let context else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let connection = loopBound.value
            connection.flushScheduled = false
            connection.flushOutput()
        }
    }

    /// Writes what the session has to send while the channel is writable, then closes the
    /// connection when the session is done or the connection is ending.
    private func flushOutput() {
        guard let context, let session else { return }
        var output: ByteBuffer?
        while context.channel.isWritable {
            var chunk: UnsafePointer<UInt8>?
            let length = nghttp2_session_mem_send(session, &chunk)
            if length < 0 {
                closing = true
                break
            }
            guard length > 0, let chunk else { break }
            if output == nil { output = context.channel.allocator.buffer(capacity: max(length, 1024)) }
            output!.writeBytes(UnsafeRawBufferPointer(start: chunk, count: length))
            if output!.readableBytes >= 64 * 1024 {
                context.write(wrapOutboundOut(output!), promise: nil)
                output = nil
            }
        }
        let finished = closing || (nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0)
        if let output {
            context.write(wrapOutboundOut(output), promise: nil)
        }
        if finished {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else if output != nil {
            context.flush()
        }
    }

    // MARK: - Idle limits

    private func onTick() {
        tick += 1
        guard let session else { return }
        if streams.isEmpty {
            if tick - idleSince >= idleSeconds, !closing {
                nghttp2_session_terminate_session(session, NGHTTP2_NO_ERROR.rawValue)
                closing = true
                flushOutput()
            }
            return
        }
        for (id, stream) in streams where !stream.requestEnded && tick - stream.lastActivity >= idleSeconds {
            stream.body?.finish(ChannelError.eof)
            stream.body = nil
            stream.lastActivity = tick
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, NGHTTP2_CANCEL.rawValue)
        }
        flushOutput()
    }
}

@available(*, unavailable)
extension HTTP2ServerConnection: Sendable {}

/// The client reset the stream (or the connection ended) before its exchange finished.
struct HTTP2StreamResetError: Error, CustomStringConvertible {
    let code: UInt32
    var description: String { "the HTTP/2 stream was reset (error code \(code))" }
}

/// Writes a response to its stream of an ``HTTP2ServerConnection``: the head goes with the
/// first part; the last part of a body of known length goes with the end, in one hop to
/// the event loop; otherwise each part waits while the stream has more than
/// ``HTTP2ServerConnection/outboundHighWater`` bytes queued.
struct HTTP2StreamResponseWriter: ResponseBodyWriter {
    let connection: NIOLoopBound<HTTP2ServerConnection>
    let eventLoop: any EventLoop
    let streamID: Int32
    var head: HTTPResponse?
    var remaining: Int?
    /// The body's last part, when its length was known: it goes with the end.
    var last: ByteBuffer?

    init(connection: NIOLoopBound<HTTP2ServerConnection>, eventLoop: any EventLoop, streamID: Int32, head: HTTPResponse, remaining: Int?) {
        self.connection = connection
        self.eventLoop = eventLoop
        self.streamID = streamID
        self.head = head
        self.remaining = remaining
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        if let remaining { self.remaining = remaining - buffer.readableBytes }
        if remaining == 0, last == nil {
            last = buffer  // sent with the end, in one hop to the event loop
            return
        }
        var head = self.head
        self.head = nil
        let connection = self.connection
        let id = streamID
        if let last {
            // More than the declared length: the parts still go out in order.
            self.last = nil
            let first = head
            eventLoop.execute { connection.value.send(id, head: first, buffer: last, end: false, trailers: nil, drained: nil) }
            head = nil
        }
        let drained = eventLoop.makePromise(of: Void.self)
        let pendingHead = head
        eventLoop.execute { connection.value.send(id, head: pendingHead, buffer: buffer, end: false, trailers: nil, drained: drained) }
        try await drained.futureResult.get()
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let head = self.head
        let last = self.last
        let connection = self.connection
        let id = streamID
        eventLoop.execute { connection.value.send(id, head: head, buffer: last, end: true, trailers: trailingHeaders, drained: nil) }
    }
}

