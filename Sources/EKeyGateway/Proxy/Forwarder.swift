public import AsyncHTTPClient
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
/// (DESIGN.md §5). Bodies are streamed both ways, never buffered whole.
///
/// One pooled `HTTPClient` per route carries the route's timeouts: `connect` for the
/// connection, `first_byte` until the response head, `idle` between body reads.
public final class Forwarder: Sendable {
    /// How forwarding failed, and whether the upstream may have seen the request.
    public struct Failure: Error, Sendable {
        public let error: EKeyError
        /// `true` only when no connection to the upstream was made, so nothing was sent
        /// and the use may be given back.
        public let nothingSent: Bool
    }

    private let clients: [String: HTTPClient]
    private let logger: Logger

    /// Creates pooled clients for `routes`.
    public init(routes: [Route], logger: Logger) throws {
        var clients: [String: HTTPClient] = [:]
        for route in routes {
            guard ["http", "https"].contains(route.upstream.scheme?.lowercased() ?? "") else {
                throw GatewaySetupError(
                    description: "gateway.routes[\(route.prefix)].upstream: \(route.upstream.absoluteString) is not supported by this release; use http:// (HTTP/1.1) or https:// (h2 or HTTP/1.1 by ALPN)")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let ca = route.upstreamCA {
                tls.trustRoots = .certificates(try TLSSetup.loadCertificates(ca, role: "gateway.routes[\(route.prefix)].upstream_ca"))
            }
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: tls, redirectConfiguration: .disallow,
                timeout: .init(connect: Self.timeAmount(route.timeouts.connect), read: Self.timeAmount(route.timeouts.idle)))
            configuration.httpVersion = .automatic
            configuration.decompression = .disabled
            clients[route.prefix] = HTTPClient(eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton), configuration: configuration)
        }
        self.clients = clients
        self.logger = logger
    }

    /// Closes every upstream connection.
    public func shutdown() async {
        for client in clients.values {
            try? await client.shutdown()
        }
    }

    /// Forwards `request` (already verified) and returns the upstream's response, with
    /// its body still streaming. `onBodyFailure` runs if the body breaks mid-stream.
    public func forward(
        _ request: Request, verified: RequestVerifier.Verified, clientAddress: String?,
        onBodyFailure: @escaping @Sendable (any Error) -> Void
    ) async throws(Failure) -> Response {
        let route = verified.route
        guard let client = clients[route.prefix] else {
            throw Failure(error: EKeyError(.badGateway, "no upstream client for route \(route.prefix)"), nothingSent: true)
        }
        var base = route.upstream.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var url = base + verified.target.path
        if let query = verified.target.query { url += "?" + query }
        var upstream = HTTPClientRequest(url: url)
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for (name, value) in HeaderPolicy.upstreamHeaders(from: request.headers) {
            upstream.headers.add(name: name, value: value)
        }
        let claims = verified.token.claims
        upstream.headers.add(name: "X-EKey-Sub", value: claims.subject)
        upstream.headers.add(name: "X-EKey-Trace", value: claims.trace)
        upstream.headers.add(name: "X-EKey-Action", value: verified.action.description)
        upstream.headers.add(name: "X-EKey-Use", value: "\(verified.used)/\(verified.limit)")
        upstream.headers.add(
            name: "Forwarded", value: HeaderPolicy.forwarded(clientAddress: clientAddress, host: request.head.authority, proto: "https"))
        let length = request.headers[.contentLength].flatMap { Int64($0) }
        let sendsBody = length != 0 || request.method != .get && request.method != .head
        var relay: RequestBodyRelay?
        if let length, length > 0, length <= Self.smallBodyLimit {
            let body = request.body
            let bytes: ByteBuffer
            do {
                bytes = try await body.collect(upTo: Int(length))
            } catch {
                throw Failure(error: EKeyError(.invalidRequest, "the request body did not match its Content-Length: \(error)"), nothingSent: true)
            }
            upstream.body = .bytes(bytes)
        } else if sendsBody {
            let streaming = RequestBodyRelay(request.body)
            upstream.body = .stream(streaming.chunks, length: length.map { .known($0) } ?? .unknown)
            relay = streaming
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(upstream, timeout: Self.timeAmount(route.timeouts.firstByte), logger: logger)
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
                onBodyFailure(error)
                throw Failure(error: EKeyError(.badGateway, "the upstream \(route.upstream.absoluteString) broke its response body: \(error)"), nothingSent: false)
            }
        }
        let streamingRelay = relay
        let body = ObservedBody(base: response.body, onFailure: onBodyFailure, onEnd: { await streamingRelay?.stop() })
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: body))
    }

    /// Bodies up to this size with a known length are read whole and sent in one piece
    /// instead of being streamed (fewer hops per request); larger ones are streamed.
    static let smallBodyLimit: Int64 = 64 * 1024

    /// Maps a client error to 502/504 and decides whether the upstream may have seen the request.
    static func classify(_ error: any Error, route: Route) -> Failure {
        let upstream = route.upstream.absoluteString
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .connectTimeout:
                return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not accept a connection in time"), nothingSent: true)
            case .deadlineExceeded, .readTimeout:
                return Failure(error: EKeyError(.gatewayTimeout, "the upstream \(upstream) did not answer in time"), nothingSent: false)
            default:
                return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(clientError)"), nothingSent: false)
            }
        }
        if error is NIOConnectionError || error is ChannelError && "\(error)".contains("connect") {
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) refused the connection"), nothingSent: true)
        }
        if let ioError = error as? IOError, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(ioError.errnoCode) {
            return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) refused the connection"), nothingSent: true)
        }
        if error is NIOSSLError {
            return Failure(error: EKeyError(.badGateway, "TLS to the upstream \(upstream) failed: \(error)"), nothingSent: true)
        }
        return Failure(error: EKeyError(.badGateway, "the upstream \(upstream) failed: \(error)"), nothingSent: false)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The upstream's body, passed through; a failure mid-stream is reported before it
/// propagates (the downstream stream is then reset). When it ends either way, `onEnd`
/// runs first: the request-body relay lets go of the client's body.
struct ObservedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: HTTPClientResponse.Body
    let onFailure: @Sendable (any Error) -> Void
    let onEnd: @Sendable () async -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator
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
