import EKeyProtocol
public import HTTPTypes
public import NIOCore
public import Hummingbird
public import ServiceLifecycle
import Synchronization

/// Counts requests in flight so a graceful shutdown can let them finish.
///
/// Hummingbird's HTTP/2 connections drop open streams when the server quiesces, so E-Key
/// drains itself before the listeners stop: on SIGTERM ``DrainService`` marks the tracker
/// as draining (new requests get 503; over HTTP/1.1 with `Connection: close`), waits until the requests
/// in flight have finished or the deadline has passed, and only then lets the service
/// group stop the listeners.
public final class InFlightRequests: Sendable {
    private let state = Mutex<(count: Int, draining: Bool)>((0, false))

    /// Creates an idle tracker.
    public init() {}

    /// Registers a request; `false` when the service is draining and must refuse it.
    public func enter() -> Bool {
        state.withLock { state in
            guard !state.draining else { return false }
            state.count += 1
            return true
        }
    }

    /// Marks a request as finished.
    public func leave() {
        state.withLock { $0.count -= 1 }
    }

    /// Requests currently in flight.
    public var count: Int { state.withLock { $0.count } }

    /// Whether new requests are refused.
    public var isDraining: Bool { state.withLock { $0.draining } }

    func startDraining() {
        state.withLock { $0.draining = true }
    }

    /// The answer to a request that arrives while draining: 503 with `Retry-After: 1`, and
    /// over HTTP/1.1 `Connection: close`. HTTP/2 forbids `Connection` (RFC 9113 §8.2.2; a
    /// stream carrying it is reset), and its connection ends with the server's GOAWAY.
    public static func refusal(overHTTP2: Bool) -> Response {
        Response(refusalParts(overHTTP2: overHTTP2))
    }

    /// ``refusal(overHTTP2:)`` as a head and a body, for a response written on the event loop.
    public static func refusalParts(overHTTP2: Bool) -> (HTTPResponse, ByteBuffer) {
        var (head, body) = HTTPResponse.error(.init(.temporarilyUnavailable, "the service is shutting down; retry on another replica"))
        if !overHTTP2 {
            head.headerFields[.connection] = "close"
        }
        head.headerFields[.retryAfter] = "1"
        return (head, body)
    }
}

/// Refuses new requests while draining and counts the others (for routers).
public struct InFlightMiddleware: RouterMiddleware {
    let requests: InFlightRequests

    /// Creates the middleware over `requests`.
    public init(_ requests: InFlightRequests) {
        self.requests = requests
    }

    public func handle(
        _ request: Request, context: EKeyRequestContext, next: (Request, EKeyRequestContext) async throws -> Response
    ) async throws -> Response {
        guard requests.enter() else { return InFlightRequests.refusal(overHTTP2: context.isHTTP2Stream) }
        defer { requests.leave() }
        return try await next(request, context)
    }
}

/// Waits, at graceful shutdown, for the requests in flight before the listeners stop.
/// Put it last in the service list: the group stops services in reverse order.
public struct DrainService: Service {
    let requests: InFlightRequests
    let deadline: Duration

    /// Creates the service; `deadline` bounds the wait.
    public init(_ requests: InFlightRequests, deadline: Duration = .seconds(10)) {
        self.requests = requests
        self.deadline = deadline
    }

    public func run() async throws {
        try? await gracefulShutdown()
        requests.startDraining()
        let end = ContinuousClock.now + deadline
        while requests.count > 0, ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
