import Tracing
import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
public import Hummingbird
public import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
public import Logging
import Prometheus

/// Answers every request on the gateway's listener: the verification steps, then the
/// upstream (docs/spec/gateway.md). Counts each decision in the metrics of docs/spec/observability.md and writes one
/// audit event per request.
public struct GatewayResponder: HTTPResponder {
    public typealias Context = EKeyRequestContext

    let verifier: RequestVerifier
    let forwarder: Forwarder
    let metrics: MetricsRegistry
    let audit: AuditLog
    let logger: Logger
    /// The wall clock, in epoch milliseconds.
    let now: @Sendable () -> Int64
    /// Requests in flight, drained at shutdown.
    public let inFlight = InFlightRequests()
    /// `ekey_gateway_upstream_seconds` and `ekey_verify_success_total`, made once.
    let upstreamSeconds: DurationHistogram
    let verifySuccesses: Counter
    /// A refusal's counters by outcome, made at the outcome's first refusal (a labelled
    /// series appears at its first increment), not looked up per request.
    private let outcomeCounters = NIOLockedValueBox<[VerificationOutcome: OutcomeCounters]>([:])

    private struct OutcomeCounters {
        let own: Counter?
        let failures: Counter
    }

    /// Creates the responder.
    public init(
        verifier: RequestVerifier, forwarder: Forwarder, metrics: MetricsRegistry, audit: AuditLog = AuditLog(),
        logger: Logger, now: @escaping @Sendable () -> Int64 = WallClock.epochMilliseconds
    ) {
        self.verifier = verifier
        self.forwarder = forwarder
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        self.now = now
        upstreamSeconds = metrics.latency("ekey_gateway_upstream_seconds")
        verifySuccesses = metrics.counter("ekey_verify_success_total")
        // The success counter exists from its handle above; these two export 0 from start too.
        for name in ["ekey_verify_replay_blocked_total", "ekey_verify_invalid_proof_total"] {
            metrics.increment(name, by: 0)
        }
        // Both series from start, so an alert on their rate has a series before the first failure.
        for status in ["502", "504"] {
            metrics.increment("ekey_gateway_upstream_errors_total", [("status", status)], by: 0)
        }
    }

    static let dpopField = HTTPField.Name("DPoP")!

    /// The listener's ``InlineHandler``: steps 0-4 run on the event loop as the head
    /// arrives; a refusal is written from there, with no task; a request that passes goes
    /// on in a task (the use count, then the upstream). With tracing on, or when step 2
    /// needs the key set read first, the whole request runs in the task.
    public func answer(_ head: HTTPRequest, origin: InlineRequestOrigin) -> InlineAnswer {
        let context = EKeyRequestContext(origin: origin, logger: logger)
        guard !ServiceTracing.isEnabled, inFlight.enter() else {
            return .deferred { [context] request in try await respond(to: request, context: context) }
        }
        let started = ContinuousClock.now
        var event = Self.event(for: head, clientAddress: context.clientAddress)
        let screening: RequestVerifier.Screening
        do {
            screening = try verifier.check(
                Self.incoming(head, peer: origin.peer), nowMilliseconds: now(), key: verifier.tokens.keys.freshKey(forKeyID:))
        } catch {
            defer { inFlight.leave() }
            record(error, event: &event, started: started)
            let (response, body) = Self.refusal(for: error)
            metrics.recordRequest(route: verifier.routeLabel(for: head.path ?? ""), status: response.status.code, ContinuousClock.now - started)
            return .immediate(response, body)
        }
        guard case .checked(let checked) = screening else {
            inFlight.leave()
            return .deferred { [context] request in try await respond(to: request, context: context) }
        }
        return .deferred { [context, event] request in
            defer { inFlight.leave() }
            var event = event
            let verified: RequestVerifier.Verified
            do throws(Rejection) {
                verified = try await verifier.account(checked)
            } catch {
                record(error, event: &event, started: started)
                let response = Self.response(for: error)
                metrics.recordRequest(route: checked.route.prefix, status: response.status.code, ContinuousClock.now - started)
                return response
            }
            let response = await forward(request, verified: verified, event: event, clientAddress: context.clientAddress, started: started)
            metrics.recordRequest(route: checked.route.prefix, status: response.status.code, ContinuousClock.now - started)
            return response
        }
    }

    /// Answers a request entirely in its task (steps 0-5, then the upstream), each step a
    /// span when tracing is on.
    public func respond(to request: Request, context: EKeyRequestContext) async throws -> Response {
        guard inFlight.enter() else { return InFlightRequests.refusal(overHTTP2: context.isHTTP2Stream) }
        defer { inFlight.leave() }
        let started = ContinuousClock.now
        guard ServiceTracing.isEnabled else {
            let (response, route) = await verifyAndForward(request, context: context, started: started)
            metrics.recordRequest(
                route: route ?? verifier.routeLabel(for: request.head.path ?? ""), status: response.status.code,
                ContinuousClock.now - started)
            return response
        }
        // The server span continues the client's traceparent; every step is a child of it.
        return await withSpan("gateway.request", context: ServiceTracing.context(of: request.headers), ofKind: .server) { span in
            span.attributes["http.request.method"] = request.method.rawValue
            span.attributes["url.path"] = String((request.head.path ?? "").prefix { $0 != "?" }.prefix(512))
            let (response, routed) = await verifyAndForward(request, context: context, started: started)
            let route = routed ?? verifier.routeLabel(for: request.head.path ?? "")
            span.attributes["ekey.route"] = route
            span.attributes["http.response.status_code"] = Int(response.status.code)
            if response.status.code >= 500 { span.setStatus(.init(code: .error)) }
            metrics.recordRequest(route: route, status: response.status.code, ContinuousClock.now - started)
            return response
        }
    }

    /// The start of a request's audit event: method, path without its query, client.
    static func event(for head: HTTPRequest, clientAddress: String?) -> AuditEvent {
        var event = AuditEvent(event: "verify", outcome: VerificationOutcome.allowed.rawValue)
        event.method = head.method.rawValue
        event.path = String((head.path ?? "").prefix { $0 != "?" }.prefix(512))
        event.client = clientAddress
        return event
    }

    /// What the verification steps read from a request's head.
    static func incoming(_ head: HTTPRequest, peer: PeerIdentity?) -> RequestVerifier.Incoming {
        RequestVerifier.Incoming(
            method: head.method.rawValue, target: head.path ?? "", authorization: head.headerFields[values: .authorization],
            dpop: head.headerFields[values: Self.dpopField], contentLength: head.headerFields[values: .contentLength],
            transferEncoding: head.headerFields[values: .transferEncoding], peer: peer)
    }

    /// The answer, and the prefix of the route that served a verified request (`nil` for a
    /// refusal: its route label is looked up then, the only time it is needed).
    private func verifyAndForward(_ request: Request, context: EKeyRequestContext, started: ContinuousClock.Instant) async
        -> (Response, route: String?)
    {
        var event = Self.event(for: request.head, clientAddress: context.clientAddress)
        let verified: RequestVerifier.Verified
        do {
            verified = try await verifier.verify(Self.incoming(request.head, peer: await context.peerIdentity()), nowMilliseconds: now())
        } catch {
            record(error, event: &event, started: started)
            return (Self.response(for: error), nil)
        }
        return (await forward(request, verified: verified, event: event, clientAddress: context.clientAddress, started: started), verified.route.prefix)
    }

    /// Sends a verified request upstream and audits the result; gives the use back when
    /// the upstream never received the request.
    private func forward(
        _ request: Request, verified: RequestVerifier.Verified, event: AuditEvent, clientAddress: String?, started: ContinuousClock.Instant
    ) async -> Response {
        var event = event
        let claims = verified.token.claims
        event.subject = claims.subject
        event.trace = claims.trace
        event.capabilityAction = verified.action.description
        let upstreamStarted = ContinuousClock.now
        do {
            let audit = self.audit
            let failureEvent = event
            let onBodyFailure: @Sendable (any Error) -> Void = { error in
                var broken = failureEvent
                broken.outcome = VerificationOutcome.upstreamError.rawValue
                broken.reason = "the upstream broke the response body: \(error)"
                audit.record(broken)
            }
            let response: Response
            if ServiceTracing.isEnabled {
                response = try await Self.tracedUpstream(verified) { () async throws(Forwarder.Failure) -> Response in
                    try await forwarder.forward(request, verified: verified, clientAddress: clientAddress, onBodyFailure: onBodyFailure)
                }
            } else {
                response = try await forwarder.forward(request, verified: verified, clientAddress: clientAddress, onBodyFailure: onBodyFailure)
            }
            upstreamSeconds.record(ContinuousClock.now - upstreamStarted)
            verifySuccesses.increment()
            event.extra["status"] = String(response.status.code)
            event.extra["use"] = "\(verified.used)/\(verified.limit)"
            event.latencyMilliseconds = Self.milliseconds(since: started)
            audit.record(event)
            return response
        } catch {
            upstreamSeconds.record(ContinuousClock.now - upstreamStarted)
            if error.nothingSent {
                await verifier.usage.refund(verified.token, logger: logger)
            }
            count(.upstreamError)
            if [502, 504].contains(error.error.status) {
                metrics.increment("ekey_gateway_upstream_errors_total", [("status", String(error.error.status))])
            }
            event.outcome = VerificationOutcome.upstreamError.rawValue
            event.reason = error.error.reason
            event.extra["refunded"] = error.nothingSent ? "true" : "false"
            event.latencyMilliseconds = Self.milliseconds(since: started)
            audit.record(event)
            return .error(error.error)
        }
    }

    /// The upstream exchange as a client span (the forwarder sends its `traceparent`
    /// upstream), ending when the upstream's response head has arrived.
    static func tracedUpstream(
        _ verified: RequestVerifier.Verified, _ forward: () async throws(Forwarder.Failure) -> Response
    ) async throws(Forwarder.Failure) -> Response {
        let span = startSpan("gateway.upstream", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        span.attributes["server.address"] = verified.route.upstream.host ?? ""
        span.attributes["ekey.route"] = verified.route.prefix
        defer { span.end() }
        let outcome: Result<Response, Forwarder.Failure> = await ServiceContext.withValue(span.context) {
            do throws(Forwarder.Failure) {
                return .success(try await forward())
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let response):
            span.attributes["http.response.status_code"] = Int(response.status.code)
            return response
        case .failure(let failure):
            span.setStatus(.init(code: .error))
            span.attributes["error.type"] = failure.error.code.wireName
            throw failure
        }
    }

    /// Counts a request that was not allowed: `ekey_verify_failure_total` by its outcome,
    /// and the outcome's own counter where it has one.
    func count(_ outcome: VerificationOutcome) {
        let counters = outcomeCounters.withLockedValue { made in
            if let counters = made[outcome] { return counters }
            let counters = OutcomeCounters(
                own: outcome.dedicatedCounter.map { metrics.counter($0) },
                failures: metrics.counter("ekey_verify_failure_total", [("reason", outcome.rawValue)]))
            made[outcome] = counters
            return counters
        }
        counters.own?.increment()
        counters.failures.increment()
    }

    /// Counts and audits a refused request.
    func record(_ rejection: Rejection, event: inout AuditEvent, started: ContinuousClock.Instant) {
        count(rejection.outcome)
        event.outcome = rejection.outcome.rawValue
        event.reason = rejection.error.reason
        if let claims = rejection.token {
            event.subject = claims.subject
            event.trace = claims.trace
            event.capabilityAction = claims.capability.action.description
        }
        event.latencyMilliseconds = Self.milliseconds(since: started)
        audit.record(event)
    }

    /// The error response of a rejection: JSON body, status, challenge and extra headers.
    static func response(for rejection: Rejection) -> Response {
        Response(refusal(for: rejection))
    }

    /// ``response(for:)`` as a head and a body, written on the event loop.
    static func refusal(for rejection: Rejection) -> (HTTPResponse, ByteBuffer) {
        var (head, body) = HTTPResponse.error(rejection.error, scheme: rejection.scheme, challenge: true)
        for (name, value) in rejection.headers {
            if let fieldName = HTTPField.Name(name) {
                head.headerFields.append(HTTPField(name: fieldName, value: value))
            }
        }
        return (head, body)
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }
}
