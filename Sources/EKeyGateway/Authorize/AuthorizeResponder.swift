import EKeyConfig
import EKeyProtocol
import EKeyServer
import Hummingbird
import NIOCore
import HTTPTypes
import Tracing

/// Answers the authorize listener (`gateway.authorize`, docs/authorize.md): a trusted proxy
/// asks whether the request it holds may go on. The gateway's own verifier decides (steps
/// 0–5, the use counted as on the gateway); the answer is 200 with the `X-EKey-*` headers for
/// the proxy to copy upstream, or the gateway's refusal as is. Callers outside
/// `trusted_clients` get 403 and none of their headers are read.
struct AuthorizeResponder: Sendable {
    /// The gateway's responder: its verifier, metrics, audit log, clock and in-flight count.
    let gateway: GatewayResponder
    let trustedClients: [TrustedClient]
    let pathPrefix: String?

    /// The `mode` member of the audit events.
    static let mode = "authorize"

    /// An answer to a proxy's question: decided on the event loop (a refusal, or a caller
    /// outside `trusted_clients`), or pending the use count (and, when step 2 needs it,
    /// the key set read) in a task. Either way the answer is one HTTP response, which the
    /// HTTP listener writes as is and the gRPC service maps onto a `CheckResponse`.
    enum Decision: Sendable {
        case decided((HTTPResponse, ByteBuffer))
        case pending(@Sendable () async -> (HTTPResponse, ByteBuffer))
    }

    /// The HTTP listener's ``InlineHandler``: the caller's trust and steps 0-4 run on the
    /// event loop as the head arrives, so a refusal is written from there with no task; a
    /// request that passes them has its use counted in a task. With tracing on, the whole
    /// request runs in the task, under a `gateway.authorize` span.
    func answer(_ head: HTTPRequest, origin: InlineRequestOrigin) -> InlineAnswer {
        guard !ServiceTracing.isEnabled else {
            return .deferred { request in
                await withSpan("gateway.authorize", context: ServiceTracing.context(of: request.headers), ofKind: .server) { span in
                    let response = await Response(decideOverHTTP(head, origin: origin).settled())
                    span.attributes["http.response.status_code"] = Int(response.status.code)
                    return response
                }
            }
        }
        switch decideOverHTTP(head, origin: origin) {
        case .decided(let (response, body)):
            return .immediate(response, body)
        case .pending(let rest):
            return .deferred { _ in await Response(rest()) }
        }
    }

    /// The HTTP listener's question: the caller is the connection's peer, the original
    /// request is named by the forwarded-request headers (``ForwardedRequest``).
    private func decideOverHTTP(_ head: HTTPRequest, origin: InlineRequestOrigin) -> Decision {
        guard gateway.inFlight.enter() else {
            let (head, body) = InFlightRequests.refusalParts(overHTTP2: origin.overHTTP2)
            return .decided((head, body))
        }
        let started = ContinuousClock.now
        let client = origin.clientAddress
        let ownTarget = head.path ?? ""
        guard trusts(peer: origin.peer, address: client) else {
            defer { gateway.inFlight.leave() }
            return .decided(untrusted(method: head.method.rawValue, target: ownTarget, peer: origin.peer, address: client, started: started))
        }
        let original: ForwardedRequest
        do {
            original = try ForwardedRequest(headers: head.headerFields, method: head.method.rawValue, target: ownTarget, pathPrefix: pathPrefix)
        } catch {
            defer { gateway.inFlight.leave() }
            var event = Self.event(method: head.method.rawValue, target: ownTarget, client: client)
            return .decided(refuse(error, event: &event, route: "none", started: started))
        }
        let fields = head.headerFields
        let incoming = RequestVerifier.Incoming(
            method: original.method, target: original.target, authorization: fields[values: .authorization],
            dpop: fields[values: GatewayResponder.dpopField], contentLength: fields[values: .contentLength],
            transferEncoding: fields[values: .transferEncoding], peer: original.certificate)
        return decide(incoming, client: client, started: started, leavingInFlight: true)
    }

    /// Whether the caller, by its TLS identity or its address, is in `trusted_clients`.
    func trusts(peer: PeerIdentity?, address: String?) -> Bool {
        trustedClients.contains { $0.admits(identity: peer?.identity, address: address) }
    }

    /// Steps 0-4 now, on the caller's thread; step 5 (and the key set read, when step 2
    /// needs it) pending. Every outcome is counted and audited with `mode: "authorize"`.
    /// With `leavingInFlight`, the in-flight count entered by the caller is left once the
    /// answer is known.
    func decide(_ incoming: RequestVerifier.Incoming, client: String?, started: ContinuousClock.Instant, leavingInFlight: Bool) -> Decision {
        var event = Self.event(method: incoming.method, target: incoming.target, client: client)
        let screening: RequestVerifier.Screening
        do {
            screening = try gateway.verifier.check(incoming, nowMilliseconds: gateway.now(), key: gateway.verifier.tokens.keys.freshKey(forKeyID:))
        } catch {
            if leavingInFlight { gateway.inFlight.leave() }
            return .decided(refuse(error, event: &event, route: gateway.verifier.routeLabel(for: incoming.target), started: started))
        }
        return .pending { [event] in
            defer { if leavingInFlight { gateway.inFlight.leave() } }
            var event = event
            let verified: RequestVerifier.Verified
            do throws(Rejection) {
                switch screening {
                case .checked(let checked): verified = try await gateway.verifier.account(checked)
                case .keyNeeded: verified = try await gateway.verifier.verify(incoming, nowMilliseconds: gateway.now())
                }
            } catch {
                return refuse(error, event: &event, route: gateway.verifier.routeLabel(for: incoming.target), started: started)
            }
            return allowed(verified, event: &event, started: started)
        }
    }

    /// 200 with the `X-EKey-*` fields for the proxy to copy upstream, counted and audited.
    private func allowed(_ verified: RequestVerifier.Verified, event: inout AuditEvent, started: ContinuousClock.Instant)
        -> (HTTPResponse, ByteBuffer)
    {
        gateway.metrics.increment("ekey_verify_success_total")
        let claims = verified.token.claims
        event.subject = claims.subject
        event.trace = claims.trace
        event.capabilityAction = verified.action.description
        event.extra["use"] = "\(verified.used)/\(verified.limit)"
        event.extra["status"] = "200"
        event.latencyMilliseconds = GatewayResponder.milliseconds(since: started)
        gateway.audit.record(event)
        var head = HTTPResponse(status: .ok)
        for (name, value) in verified.identityFields {
            head.headerFields.append(HTTPField(name: HTTPField.Name(name)!, value: value))
        }
        head.headerFields[.cacheControl] = "no-store"
        gateway.metrics.recordRequest(route: verified.route.prefix, status: 200, ContinuousClock.now - started)
        return (head, ByteBuffer())
    }

    /// The gateway's refusal, counted and audited as the gateway does.
    func refuse(_ rejection: Rejection, event: inout AuditEvent, route: String, started: ContinuousClock.Instant) -> (HTTPResponse, ByteBuffer) {
        gateway.record(rejection, event: &event, started: started)
        let refusal = GatewayResponder.refusal(for: rejection)
        gateway.metrics.recordRequest(route: route, status: refusal.0.status.code, ContinuousClock.now - started)
        return refusal
    }

    /// 403 for a caller outside `trusted_clients`, audited with who it was and counted in
    /// `ekey_authorize_untrusted_total`; its forwarded and certificate headers are not looked at.
    func untrusted(method: String, target: String, peer: PeerIdentity?, address: String?, started: ContinuousClock.Instant)
        -> (HTTPResponse, ByteBuffer)
    {
        var event = Self.event(method: method, target: target, client: address)
        event.outcome = Self.untrustedOutcome
        let who = peer.map { "TLS identity \($0.identity)" } ?? "no TLS client certificate"
        event.reason = "the caller (\(who), address \(address ?? "unknown")) is not in gateway.authorize.trusted_clients"
        event.latencyMilliseconds = GatewayResponder.milliseconds(since: started)
        gateway.audit.record(event)
        gateway.metrics.increment(Self.untrustedCounter)
        let refusal = HTTPResponse.error(
            EKeyError(
                .accessDenied,
                "this caller is not in gateway.authorize.trusted_clients; add its TLS identity or address range there, or call from a trusted proxy"))
        gateway.metrics.recordRequest(route: "none", status: refusal.0.status.code, ContinuousClock.now - started)
        return refusal
    }

    /// Calls refused because the caller is outside `trusted_clients`; not verifications, so
    /// not in `ekey_verify_failure_total`.
    static let untrustedCounter = "ekey_authorize_untrusted_total"

    /// The start of a decision's audit event.
    static func event(method: String, target: String, client: String?) -> AuditEvent {
        var event = AuditEvent(event: "verify", outcome: VerificationOutcome.allowed.rawValue)
        event.extra["mode"] = mode
        event.method = method
        event.path = auditPath(target)
        event.client = client
        return event
    }

    /// The audit `outcome` of a call from outside `trusted_clients`.
    static let untrustedOutcome = "untrusted_client"

    private static func auditPath(_ target: String) -> String {
        String(target.prefix { $0 != "?" }.prefix(512))
    }
}

extension AuthorizeResponder.Decision {
    /// The answer, waiting for it if it is pending.
    func settled() async -> (HTTPResponse, ByteBuffer) {
        switch self {
        case .decided(let answer): answer
        case .pending(let rest): await rest()
        }
    }
}
