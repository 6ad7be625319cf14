import Tracing
import AsyncHTTPClient
public import EKeyProtocol
public import Hummingbird
import HTTPTypes
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import EKeyServer
import EKeyConfig
import Foundation

/// Step 6: sends a verified request to its route's upstream and streams the answer back
/// (docs/spec/gateway.md). Bodies are streamed both ways, never buffered whole.
///
/// One ``HTTP1Upstream`` per `http://` route, one pooled `HTTPClient` per `https://` route
/// (TLS, `h2` or HTTP/1.1 by ALPN), and one ``H2CUpstream`` per `h2c://` route carry the
/// route's timeouts: `connect` for the connection, `first_byte`
/// until the response head, `idle` between body reads.
public final class Forwarder: Sendable {
    /// How forwarding failed, and whether the upstream may have seen the request.
    public struct Failure: Error, Sendable {
        public let error: EKeyError
        /// `true` only when the upstream cannot have processed the request (no connection,
        /// or, for h2c, a stream it refused or never received), so nothing was sent
        /// and the use may be given back.
        public let nothingSent: Bool
    }

    private let clients: [String: HTTPClient]
    private let http1Upstreams: [String: HTTP1Upstream]
    private let h2cUpstreams: [String: H2CUpstream]
    private let logger: Logger

    /// Creates pooled clients for `routes`. Every route is checked before the first
    /// `HTTPClient` is created, so a throw leaves no client to shut down.
    public init(routes: [Route], logger: Logger) throws {
        var configurations: [String: HTTPClient.Configuration] = [:]
        var http1Upstreams: [String: HTTP1Upstream] = [:]
        var h2cUpstreams: [String: H2CUpstream] = [:]
        for route in routes {
            let scheme = route.upstream.scheme?.lowercased() ?? ""
            if scheme == "h2c" {
                h2cUpstreams[route.prefix] = try H2CUpstream(upstream: route.upstream, timeouts: route.timeouts, logger: logger)
                continue
            }
            if scheme == "http" {
                http1Upstreams[route.prefix] = try HTTP1Upstream(upstream: route.upstream, timeouts: route.timeouts)
                continue
            }
            guard ["http", "https"].contains(scheme) else {
                throw GatewaySetupError(
                    description: "gateway.routes[\(route.prefix)].upstream: \(route.upstream.absoluteString) has an unknown scheme; use http:// (HTTP/1.1), https:// (h2 or HTTP/1.1 by ALPN) or h2c:// (HTTP/2 without TLS)")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let ca = route.upstreamCA {
                tls.trustRoots = .certificates(try TLSSetup.loadCertificates(ca, role: "gateway.routes[\(route.prefix)].upstream_ca"))
            }
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: tls, redirectConfiguration: .disallow,
                timeout: .init(connect: TimeAmount(route.timeouts.connect), read: TimeAmount(route.timeouts.idle)))
            configuration.httpVersion = .automatic
            configuration.decompression = .disabled
            configurations[route.prefix] = configuration
        }
        self.clients = configurations.mapValues { HTTPClient(eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton), configuration: $0) }
        self.http1Upstreams = http1Upstreams
        self.h2cUpstreams = h2cUpstreams
        self.logger = logger
    }

    /// Closes every upstream connection.
    public func shutdown() async {
        for client in clients.values {
            try? await client.shutdown()
        }
        for upstream in h2cUpstreams.values {
            await upstream.shutdown()
        }
        for upstream in http1Upstreams.values {
            await upstream.shutdown()
        }
    }

    /// Forwards `request` (already verified) and returns the upstream's response, with
    /// its body still streaming. `onBodyFailure` runs if the body breaks mid-stream.
    public func forward(
        _ request: Request, verified: RequestVerifier.Verified, clientAddress: String?,
        onBodyFailure: @escaping @Sendable (any Error) -> Void
    ) async throws(Failure) -> Response {
        let route = verified.route
        var target = verified.target.path
        if let query = verified.target.query { target += "?" + query }
        var fields = HeaderPolicy.upstreamHeaders(from: request.headers)
        fields += verified.identityFields
        fields.append(("Forwarded", HeaderPolicy.forwarded(clientAddress: clientAddress, host: request.head.authority, proto: "https")))
        if ServiceTracing.isEnabled {
            // The upstream continues the gateway's span, not the client's.
            var propagation = HTTPFields()
            ServiceTracing.inject(into: &propagation)
            if !propagation.isEmpty {
                fields.removeAll { ["traceparent", "tracestate"].contains($0.0.lowercased()) }
                fields += propagation.map { ($0.name.rawName, $0.value) }
            }
        }
        let length = RequestFraming.declaredLength(request.headers)
        let sendsBody = length != 0 || request.method != .get && request.method != .head
        let body: UpstreamRequestBody
        var relay: RequestBodyRelay?
        if let length, length > 0, length <= Self.smallBodyLimit {
            do {
                body = .bytes(try await request.body.collect(upTo: Int(length)))
            } catch {
                throw Failure(error: EKeyError(.invalidRequest, "the request body did not match its Content-Length: \(error)"), nothingSent: true)
            }
        } else if sendsBody, length == nil {
            // No Content-Length: over HTTP/2 the request may still carry DATA, or may have
            // ended with its HEADERS (a GET, mostly). Reading the first chunk tells which, so
            // a request without a body is sent without one (not as an empty chunked body).
            var rest = request.body.makeAsyncIterator()
            let first: ByteBuffer?
            do {
                first = try await rest.next()
            } catch {
                throw Failure(error: EKeyError(.invalidRequest, "the request body broke before anything was sent upstream: \(error)"), nothingSent: true)
            }
            if let first {
                let streaming = RequestBodyRelay(first: first, rest: rest)
                body = .stream(streaming.chunks, length: nil)
                relay = streaming
            } else {
                body = .none
            }
        } else if sendsBody {
            let streaming = RequestBodyRelay(request.body)
            body = .stream(streaming.chunks, length: length)
            relay = streaming
        } else {
            body = .none
        }
        if let h2c = h2cUpstreams[route.prefix] {
            return try await forward(
                to: h2c, route: route, method: request.method, target: target, fields: fields, body: body, relay: relay, onBodyFailure: onBodyFailure)
        }
        if let http1 = http1Upstreams[route.prefix] {
            return try await forward(
                to: http1, route: route, method: request.method, target: target, fields: fields, body: body, relay: relay, onBodyFailure: onBodyFailure)
        }
        guard let client = clients[route.prefix] else {
            await relay?.stop()
            throw Failure(error: EKeyError(.badGateway, "no upstream client for route \(route.prefix)"), nothingSent: true)
        }
        var base = route.upstream.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var upstream = HTTPClientRequest(url: base + target)
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for (name, value) in fields {
            upstream.headers.add(name: name, value: value)
        }
        switch body {
        case .none: break
        case .bytes(let bytes): upstream.body = .bytes(bytes)
        case .stream(let chunks, let length): upstream.body = .stream(chunks, length: length.map { .known($0) } ?? .unknown)
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(upstream, timeout: TimeAmount(route.timeouts.firstByte), logger: logger)
        } catch {
            await relay?.stop()
            throw Self.classify(error, route: route)
        }
        let headers = HeaderPolicy.downstreamHeaders(from: response.headers.map { ($0.name, $0.value) })
        let status = HTTPResponse.Status(code: Int(response.status.code))
        if relay == nil, let length = response.headers.first(name: "content-length").flatMap(Int64.init), length <= Self.smallBodyLimit {
            do {
                let bytes = try await response.body.collect(upTo: Int(length))
                return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: bytes))
            } catch {
                // Returned as a failure (and audited once, as such): nothing was sent downstream yet.
                throw Self.classifySmallBody(error, route: route)
            }
        }
        let streamingRelay = relay
        let observed = ObservedBody(base: response.body, onFailure: onBodyFailure, onEnd: { await streamingRelay?.stop() })
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: observed))
    }

    /// The `h2c://` leg of ``forward(_:verified:clientAddress:onBodyFailure:)``: one stream
    /// on a shared prior-knowledge HTTP/2 connection.
    private func forward(
        to upstream: H2CUpstream, route: Route, method: HTTPRequest.Method, target: String, fields: [(String, String)],
        body: UpstreamRequestBody, relay: RequestBodyRelay?, onBodyFailure: @escaping @Sendable (any Error) -> Void
    ) async throws(Failure) -> Response {
        var headerFields = HTTPFields()
        for (name, value) in fields {
            if let fieldName = HTTPField.Name(name) { headerFields.append(HTTPField(name: fieldName, value: value)) }
        }
        let head = HTTPRequest(method: method, scheme: "http", authority: upstream.address.authority, path: upstream.address.basePath + target, headerFields: headerFields)
        let response: HTTPResponse
        let contents: H2CResponseBody.Contents
        do {
            (response, contents) = try await upstream.exchange(head: head, body: body)
        } catch {
            await relay?.stop()
            throw Self.classifyH2C(error, route: route)
        }
        let headers = HeaderPolicy.downstreamHeaders(from: response.headerFields.map { ($0.name.rawName, $0.value) })
        switch contents {
        case .whole(let bytes):
            await relay?.stop()
            return Response(status: response.status, headers: headers, body: ResponseBody(byteBuffer: bytes))
        case .streaming(let responseBody):
            let observed = ObservedBody(base: responseBody, onFailure: onBodyFailure, onEnd: { await relay?.stop() })
            return Response(status: response.status, headers: headers, body: ResponseBody(asyncSequence: observed))
        }
    }

    /// The `http://` leg of ``forward(_:verified:clientAddress:onBodyFailure:)``: one
    /// exchange on a pooled HTTP/1.1 connection of the running event loop.
    private func forward(
        to upstream: HTTP1Upstream, route: Route, method: HTTPRequest.Method, target: String, fields: [(String, String)],
        body: UpstreamRequestBody, relay: RequestBodyRelay?, onBodyFailure: @escaping @Sendable (any Error) -> Void
    ) async throws(Failure) -> Response {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count + 2)
        for (name, value) in fields {
            headers.add(name: name, value: value)
        }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method.rawValue), uri: upstream.address.basePath + target, headers: headers)
        let response: HTTPResponseHead
        let contents: HTTP1ResponseContents
        do {
            (response, contents) = try await upstream.exchange(head: head, body: body)
        } catch {
            await relay?.stop()
            throw Self.classifyHTTP1(error, route: route)
        }
        let responseHeaders = HeaderPolicy.downstreamHeaders(from: response.headers.map { ($0.name, $0.value) })
        let status = HTTPResponse.Status(code: Int(response.status.code))
        switch contents {
        case .whole(let bytes):
            await relay?.stop()
            return Response(status: status, headers: responseHeaders, body: ResponseBody(byteBuffer: bytes))
        case .streaming(let responseBody):
            let observed = ObservedBody(base: responseBody, onFailure: onBodyFailure, onEnd: { await relay?.stop() })
            return Response(status: status, headers: responseHeaders, body: ResponseBody(asyncSequence: observed))
        }
    }

    /// Maps an `http://` exchange error to 502/504; "nothing sent" holds only when no
    /// connection could be made, none came free in time, or those offered closed before
    /// the request was written, on every attempt (a retry that fails after an earlier
    /// attempt was written arrives as ``UpstreamRequestWritten``).
    static func classifyHTTP1(_ error: any Error, route: Route) -> Failure {
        let upstream = route.upstream.absoluteString
        switch error {
        case let written as UpstreamRequestWritten:
            return Failure(error: classifyHTTP1(written.underlying, route: route).error, nothingSent: false)
        case let failed as UpstreamConnectFailed:
            return connectFailure(failed, upstream: upstream)
        case is HTTP1ConnectionGone:
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) closed every connection offered before the request was written"), nothingSent: true)
        case is UpstreamNeverSent:
            return Failure(
                error: EKeyError(.gatewayTimeout, "no connection to the upstream \(upstream) came free in time; the request was not sent"), nothingSent: true)
        case is HTTP1ClosedBeforeAnswer:
            return Failure(
                error: EKeyError(.badGateway, "the upstream \(upstream) closed the connection without answering; it may have seen the request"),
                nothingSent: false)
        case let timeout as UpstreamTimeout where timeout.stage == .firstByte:
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not answer in time"), nothingSent: false)
        case let timeout as UpstreamTimeout where timeout.stage == .idle:
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) stalled in the middle of its response body"), nothingSent: false)
        default:
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(error)"), nothingSent: false)
        }
    }

    /// No connection to an `http://` or `h2c://` upstream: 504 after the connect timeout, else
    /// 502; nothing was sent either way.
    static func connectFailure(_ failed: UpstreamConnectFailed, upstream: String) -> Failure {
        if let channelError = failed.underlying as? ChannelError, case .connectTimeout = channelError {
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not accept a connection in time"), nothingSent: true)
        }
        return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) refused the connection: \(failed.underlying)"), nothingSent: true)
    }

    /// Bodies up to this size with a known length are read whole and sent in one piece
    /// instead of being streamed (fewer hops per request); larger ones are streamed.
    static let smallBodyLimit: Int64 = 64 * 1024

    /// A small response read whole (its head not yet sent downstream) that broke: 504 when
    /// the upstream stalled past `idle`, as on the `h2c://` path, else 502; the use stays spent.
    static func classifySmallBody(_ error: any Error, route: Route) -> Failure {
        let upstream = route.upstream.absoluteString
        if let clientError = error as? HTTPClientError, clientError == .readTimeout || clientError == .deadlineExceeded {
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) stalled in the middle of its response body"), nothingSent: false)
        }
        return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) broke its response body: \(error)"), nothingSent: false)
    }

    /// Maps an `https://` route's client error to 502/504 and decides whether the upstream
    /// may have seen the request, by the error's type and case. AsyncHTTPClient throws its
    /// `HTTPClientError`, or, when no connection came up before the request's deadline, the
    /// pool's last connection failure as NIO raised it: `NIOConnectionError` (a host name,
    /// connected by Happy Eyeballs), `IOError` (an IP address), `NIOSSLError` (the
    /// handshake), `ChannelError.connectTimeout` (which the pool turns into
    /// `HTTPClientError.connectTimeout` first).
    static func classify(_ error: any Error, route: Route) -> Failure {
        let upstream = route.upstream.absoluteString
        switch error {
        case let clientError as HTTPClientError:
            switch clientError {
            case .connectTimeout:
                return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not accept a connection in time"), nothingSent: true)
            case .deadlineExceeded, .readTimeout:
                return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not answer in time"), nothingSent: false)
            default:
                return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(clientError)"), nothingSent: false)
            }
        case ChannelError.connectTimeout:
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not accept a connection in time"), nothingSent: true)
        case is NIOConnectionError:
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) refused the connection"), nothingSent: true)
        case let ioError as IOError where [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(ioError.errnoCode):
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) refused the connection"), nothingSent: true)
        case is NIOSSLError:
            return Failure(error: EKeyError(.badGateway, "TLS to the upstream \(upstream) failed: \(error)"), nothingSent: true)
        default:
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(error)"), nothingSent: false)
        }
    }

    /// Maps an h2c exchange error to 502/504; "nothing sent" holds when no connection or
    /// stream was made, or when the upstream refused the stream (RFC 9113 §8.7: a stream
    /// refused with REFUSED_STREAM, or above a GOAWAY's last stream, was not processed).
    static func classifyH2C(_ error: any Error, route: Route) -> Failure {
        let upstream = route.upstream.absoluteString
        switch error {
        case let failed as UpstreamConnectFailed:
            return connectFailure(failed, upstream: upstream)
        case let failed as H2CStreamNotOpened:
            return Failure(error: EKeyError(.badGateway, "no HTTP/2 stream could be opened to the upstream \(upstream): \(failed.underlying)"), nothingSent: true)
        case let failed as H2CStreamFailed where failed.underlying is UpstreamTimeout:
            return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not answer in time (\(failed))"), nothingSent: false)
        case let never as UpstreamNeverSent where never.underlying is UpstreamTimeout:
            return Failure(
                error: EKeyError(.gatewayTimeout, "no HTTP/2 stream to the upstream \(upstream) became free in time; the request was not sent"),
                nothingSent: true)
        case _ where H2CUpstream.notProcessed(error):
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) did not process the request (stream refused or connection closing): \(error)"), nothingSent: true)
        default:
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(error)"), nothingSent: false)
        }
    }
}

/// The upstream's body, passed through; a failure mid-stream is reported before it
/// propagates (the downstream stream is then reset). When it ends either way, `onEnd`
/// runs first: the request-body relay lets go of the client's body.
struct ObservedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let onFailure: @Sendable (any Error) -> Void
    let onEnd: @Sendable () async -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let onFailure: @Sendable (any Error) -> Void
        let onEnd: @Sendable () async -> Void

        mutating func next() async throws -> ByteBuffer? {
            do {
                guard let chunk = try await base.next() else {
                    await onEnd()
                    return nil
                }
                return chunk
            } catch {
                await onEnd()
                onFailure(error)
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), onFailure: onFailure, onEnd: onEnd)
    }
}
