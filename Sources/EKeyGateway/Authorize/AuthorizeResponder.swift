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

    func respond(to request: Request, origin: InlineRequestOrigin) async -> Response {
        guard gateway.inFlight.enter() else { return InFlightRequests.refusal(overHTTP2: origin.overHTTP2) }
        defer { gateway.inFlight.leave() }
        let started = ContinuousClock.now
        guard ServiceTracing.isEnabled else {
            return await decide(request, origin: origin, started: started)
        }
        return await withSpan("gateway.authorize", context: ServiceTracing.context(of: request.headers), ofKind: .server) { span in
            let response = await decide(request, origin: origin, started: started)
            span.attributes["http.response.status_code"] = Int(response.status.code)
            return response
        }
    }

    private func decide(_ request: Request, origin: InlineRequestOrigin, started: ContinuousClock.Instant) async -> Response {
        let client = origin.connection.remoteAddress?.ipAddress
        var event = AuditEvent(event: "verify", outcome: VerificationOutcome.allowed.rawValue)
        event.extra["mode"] = Self.mode
        event.client = client
        let ownTarget = request.head.path ?? ""
        guard trustedClients.contains(where: { $0.admits(identity: origin.peer?.identity, address: client) }) else {
            return untrusted(request, peer: origin.peer, event: event, started: started)
        }
        let original: ForwardedRequest
        do {
            original = try ForwardedRequest(headers: request.headers, method: request.method.rawValue, target: ownTarget, pathPrefix: pathPrefix)
        } catch {
            event.method = request.method.rawValue
            event.path = Self.auditPath(ownTarget)
            return refuse(error, event: &event, route: "none", started: started)
        }
        event.method = original.method
        event.path = Self.auditPath(original.target)
        let certificate = original.certificate
        let incoming = RequestVerifier.Incoming(
            method: original.method, target: original.target, authorization: request.headers[values: .authorization],
            dpop: request.headers[values: GatewayResponder.dpopField], contentLength: request.headers[values: .contentLength],
            transferEncoding: request.headers[values: .transferEncoding], peer: certificate)
        let verified: RequestVerifier.Verified
        do {
            verified = try await gateway.verifier.verify(incoming, nowMilliseconds: gateway.now())
        } catch {
            return refuse(error, event: &event, route: gateway.verifier.routeLabel(for: original.target), started: started)
        }
        gateway.metrics.increment("ekey_verify_success_total")
        let claims = verified.token.claims
        event.subject = claims.subject
        event.trace = claims.trace
        event.capabilityAction = verified.action.description
        event.extra["use"] = "\(verified.used)/\(verified.limit)"
        event.extra["status"] = "200"
        event.latencyMilliseconds = GatewayResponder.milliseconds(since: started)
        gateway.audit.record(event)
        var fields = HTTPFields()
        for (name, value) in verified.identityFields {
            fields.append(HTTPField(name: HTTPField.Name(name)!, value: value))
        }
        fields[.cacheControl] = "no-store"
        gateway.metrics.recordRequest(route: verified.route.prefix, status: 200, ContinuousClock.now - started)
        return Response(status: .ok, headers: fields)
    }

    /// The gateway's refusal, counted and audited as the gateway does.
    private func refuse(_ rejection: Rejection, event: inout AuditEvent, route: String, started: ContinuousClock.Instant) -> Response {
        gateway.record(rejection, event: &event, started: started)
        let response = GatewayResponder.response(for: rejection)
        gateway.metrics.recordRequest(route: route, status: response.status.code, ContinuousClock.now - started)
        return response
    }

    /// 403 for a caller outside `trusted_clients`, audited with who it was; its forwarded
    /// and certificate headers are not looked at.
    private func untrusted(_ request: Request, peer: PeerIdentity?, event: AuditEvent, started: ContinuousClock.Instant) -> Response {
        var event = event
        event.outcome = Self.untrustedOutcome
        event.method = request.method.rawValue
        event.path = Self.auditPath(request.head.path ?? "")
        let who = peer.map { "TLS identity \($0.identity)" } ?? "no TLS client certificate"
        event.reason = "the caller (\(who), address \(event.client ?? "unknown")) is not in gateway.authorize.trusted_clients"
        event.latencyMilliseconds = GatewayResponder.milliseconds(since: started)
        gateway.audit.record(event)
        let response = Response.error(
            EKeyError(
                .accessDenied,
                "this caller is not in gateway.authorize.trusted_clients; add its TLS identity or address range there, or call from a trusted proxy"))
        gateway.metrics.recordRequest(route: "none", status: response.status.code, ContinuousClock.now - started)
        return response
    }

    /// The audit `outcome` of a call from outside `trusted_clients`.
    static let untrustedOutcome = "untrusted_client"

    private static func auditPath(_ target: String) -> String {
        String(target.prefix { $0 != "?" }.prefix(512))
    }
}
