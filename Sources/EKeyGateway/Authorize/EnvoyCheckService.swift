import EKeyConfig
import EKeyEnvoyAuth
import EKeyProtocol
import EKeyServer
import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2Posix
import HTTPTypes
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Tracing

/// Envoy's ext_authz gRPC service, `envoy.service.auth.v3.Authorization/Check`, on
/// `gateway.authorize.grpc_listen` (docs/authorize.md): the same decision as the HTTP
/// authorize listener (``AuthorizeResponder``), asked in a `CheckRequest`.
///
/// The caller is trusted by its TLS identity (the client certificate of the gRPC
/// connection, as the transport hands it to the call) or its address. The original request
/// is `attributes.request.http` (method, path with query, headers); the client certificate of
/// an mTLS-bound token is `attributes.source.certificate` (Envoy's `include_peer_certificate`)
/// or an XFCC / `X-SSL-Client-Cert` header, which must agree. Allowed: status OK and the
/// `X-EKey-*` headers in `ok_response`, set over any the request had. Refused: a non-OK
/// status and a `denied_response` holding the gateway's HTTP status, headers and JSON body.
struct EnvoyCheckService: Envoy_Service_Auth_V3_Authorization.SimpleServiceProtocol {
    let authorizer: AuthorizeResponder

    /// The gRPC method path, the target audited for a call that is not read.
    static let checkPath = "/envoy.service.auth.v3.Authorization/Check"

    func check(request: Envoy_Service_Auth_V3_CheckRequest, context: ServerContext) async throws -> Envoy_Service_Auth_V3_CheckResponse {
        let http = request.attributes.request.http
        let headers = Self.fields(of: http)
        guard ServiceTracing.isEnabled else {
            return await answer(request, headers: headers, context: context)
        }
        return await withSpan("gateway.authorize", context: ServiceTracing.context(of: headers), ofKind: .server) { span in
            let response = await answer(request, headers: headers, context: context)
            span.attributes["rpc.grpc.status_code"] = Int(response.status.code)
            return response
        }
    }

    private func answer(_ request: Envoy_Service_Auth_V3_CheckRequest, headers: HTTPFields, context: ServerContext) async
        -> Envoy_Service_Auth_V3_CheckResponse
    {
        let gateway = authorizer.gateway
        guard gateway.inFlight.enter() else {
            return Self.response(InFlightRequests.refusalParts(overHTTP2: true))
        }
        let started = ContinuousClock.now
        let peer = Self.peerIdentity(context)
        let client = Self.address(ofPeer: context.remotePeer)
        guard authorizer.trusts(peer: peer, address: client) else {
            defer { gateway.inFlight.leave() }
            return Self.response(authorizer.untrusted(method: "POST", target: Self.checkPath, peer: peer, address: client, started: started))
        }
        let http = request.attributes.request.http
        let original: ForwardedRequest
        do {
            original = try ForwardedRequest(
                checkMethod: http.method, path: http.path, headers: headers, sourceCertificate: request.attributes.source.certificate)
        } catch {
            defer { gateway.inFlight.leave() }
            var event = AuthorizeResponder.event(method: http.method, target: http.path, client: client)
            return Self.response(authorizer.refuse(error, event: &event, route: "none", started: started))
        }
        let incoming = RequestVerifier.Incoming(
            method: original.method, target: original.target, authorization: headers[values: .authorization],
            dpop: headers[values: GatewayResponder.dpopField], contentLength: headers[values: .contentLength],
            transferEncoding: headers[values: .transferEncoding], peer: original.certificate)
        return Self.response(await authorizer.decide(incoming, client: client, started: started, leavingInFlight: true).settled())
    }

    /// The original request's headers: `header_map` when Envoy sends raw headers
    /// (`encode_raw_headers`), each repeat kept, else the `headers` map, in which Envoy has
    /// already joined repeats with commas. Pseudo-headers (`:path`, ...) and names that are
    /// not HTTP field names are left out.
    static func fields(of http: Envoy_Service_Auth_V3_AttributeContext.HttpRequest) -> HTTPFields {
        var fields = HTTPFields()
        if http.hasHeaderMap {
            for header in http.headerMap.headers {
                let value = header.rawValue.isEmpty ? header.value : String(decoding: header.rawValue, as: UTF8.self)
                if let name = HTTPField.Name(header.key) { fields.append(HTTPField(name: name, value: value)) }
            }
        } else {
            for key in http.headers.keys.sorted() {
                if let name = HTTPField.Name(key) { fields.append(HTTPField(name: name, value: http.headers[key]!)) }
            }
        }
        return fields
    }

    /// The TLS client identity of the gRPC connection; `nil` without TLS, without a client
    /// certificate, or when it cannot be read (then only an address range can trust the caller).
    static func peerIdentity(_ context: ServerContext) -> PeerIdentity? {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate
        else { return nil }
        return try? PeerIdentity(certificate: certificate)
    }

    /// The IP address of grpc-swift's peer description (`ipv4:127.0.0.1:5000`,
    /// `ipv6:[::1]:5000`); `nil` for anything else (then no address range matches).
    static func address(ofPeer peer: String) -> String? {
        if peer.hasPrefix("ipv4:") {
            let rest = peer.dropFirst("ipv4:".count)
            guard let colon = rest.lastIndex(of: ":") else { return nil }
            return String(rest[..<colon])
        }
        if peer.hasPrefix("ipv6:[") {
            let rest = peer.dropFirst("ipv6:[".count)
            guard let bracket = rest.firstIndex(of: "]") else { return nil }
            return String(rest[..<bracket])
        }
        return nil
    }

    /// The `CheckResponse` of the HTTP answer: 200 is OK with the `X-EKey-*` fields to set
    /// upstream; anything else is refused with the gateway's status, headers and body.
    static func response(_ answer: (HTTPResponse, ByteBuffer)) -> Envoy_Service_Auth_V3_CheckResponse {
        let (head, body) = answer
        var response = Envoy_Service_Auth_V3_CheckResponse()
        if head.status == .ok {
            response.status.code = Int32(Status.Code.ok.rawValue)
            var ok = Envoy_Service_Auth_V3_OkHttpResponse()
            for field in head.headerFields where field.name.canonicalName.hasPrefix("x-ekey-") {
                ok.headers.append(option(field, action: .overwriteIfExistsOrAdd))
            }
            response.okResponse = ok
            return response
        }
        response.status.code = Int32(grpcCode(forHTTPStatus: head.status.code).rawValue)
        response.status.message = "refused with HTTP \(head.status.code) (the denied_response carries the gateway's answer)"
        var denied = Envoy_Service_Auth_V3_DeniedHttpResponse()
        denied.status.code = Envoy_Type_V3_StatusCode(rawValue: head.status.code) ?? .forbidden
        var seen: Set<String> = []
        for field in head.headerFields where field.name != .contentLength {
            // The first value of a name replaces what Envoy would send; later ones add to it.
            let first = seen.insert(field.name.canonicalName).inserted
            denied.headers.append(option(field, action: first ? .overwriteIfExistsOrAdd : .appendIfExistsOrAdd))
        }
        denied.body = String(buffer: body)
        response.deniedResponse = denied
        return response
    }

    /// The gRPC status of a refusal: UNAUTHENTICATED for 401 (no valid token or proof),
    /// UNAVAILABLE for 5xx (the gateway could not decide), PERMISSION_DENIED otherwise.
    static func grpcCode(forHTTPStatus status: Int) -> Status.Code {
        switch status {
        case 401: .unauthenticated
        case 500...599: .unavailable
        default: .permissionDenied
        }
    }

    private static func option(_ field: HTTPField, action: Envoy_Config_Core_V3_HeaderValueOption.HeaderAppendAction)
        -> Envoy_Config_Core_V3_HeaderValueOption
    {
        var option = Envoy_Config_Core_V3_HeaderValueOption()
        option.header.key = field.name.rawName
        option.header.value = field.value
        option.appendAction = action
        return option
    }
}

/// The gRPC `Check` server on `gateway.authorize.grpc_listen`, run with the gateway's
/// services: it reports its bound port once listening, stops taking calls on graceful
/// shutdown, and a listen failure is thrown as the socket's own error (so
/// ``NamedListener`` names the key and the fix, e.g. for a port already in use).
struct EnvoyCheckServer: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let onRunning: @Sendable (Int) async -> Void

    /// A server for `service` on `address` with `tls` (`nil`: plaintext, loopback only by config).
    init(
        service: EnvoyCheckService, address: ListenAddress, tls: TLSFiles?, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void
    ) {
        let security: HTTP2ServerTransport.Posix.TransportSecurity
        if let tls {
            security = .tls(
                certificateChain: [.file(path: tls.cert, format: .pem)], privateKey: .file(path: tls.key, format: .pem)
            ) { config in
                // `optional` acts as `required` here: the transport has no "ask but accept none".
                if tls.clientAuth != .none, let clientCA = tls.clientCA {
                    config.clientCertificateVerification = .noHostnameVerification
                    config.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
                }
            }
        } else {
            security = .plaintext
        }
        let socket: GRPCNIOTransportCore.SocketAddress =
            address.host.contains(":")
            ? .ipv6(host: address.host, port: address.port) : .ipv4(host: address.host == "localhost" ? "127.0.0.1" : address.host, port: address.port)
        var config = HTTP2ServerTransport.Posix.Config.defaults
        if tls?.minVersion == .tls13 {
            config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in Self.requireTLS13(stream, logger: logger) }
        }
        transport = HTTP2ServerTransport.Posix(address: socket, transportSecurity: security, config: config)
        server = GRPCServer(transport: transport, services: [service])
        self.onRunning = onRunning
    }

    func run() async throws {
        let transport = self.transport
        let server = self.server
        let onRunning = self.onRunning
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                guard let address = try? await transport.listeningAddress else { return }
                await onRunning(address.ipv4?.port ?? address.ipv6?.port ?? 0)
            }
            try await withGracefulShutdownHandler {
                do {
                    try await server.serve()
                } catch {
                    throw Self.rootCause(error)
                }
            } onGracefulShutdown: {
                server.beginGracefulShutdown()
            }
        }
    }

    /// Holds `tls.min_version: "1.3"` on a transport whose handshake also accepts TLS 1.2.
    /// Run as each call's stream is set up, before its first frame reaches gRPC: on a
    /// connection that negotiated less than TLS 1.3, the stream's frames are dropped ahead
    /// of gRPC's handler (so no call is read or decided) and the connection is closed.
    static func requireTLS13(_ stream: any Channel, logger: Logger) -> EventLoopFuture<Void> {
        stream.eventLoop.makeCompletedFuture {
            let connection = stream.parent
            let version = connection.flatMap { try? $0.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).tlsVersion }
            guard version != .tlsv13 else { return }
            try stream.pipeline.syncOperations.addHandler(DiscardingInbound(), position: .first)
            logger.warning(
                "gateway.authorize.grpc_listen: a client from \(connection?.remoteAddress?.description ?? "an unknown address") negotiated \(version.map { "\($0)" } ?? "no TLS version") while gateway.authorize.tls.min_version is 1.3; its calls are refused and the connection closed (set min_version: \"1.2\" to accept it)")
            if let connection {
                connection.eventLoop.execute { connection.close(promise: nil) }
            }
        }
    }

    /// Drops every inbound frame of a stream that must not be read.
    final class DiscardingInbound: ChannelInboundHandler, Sendable {
        typealias InboundIn = Any

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    /// The innermost cause of grpc-swift's wrapped errors (the socket's `IOError` on a bind failure).
    static func rootCause(_ error: any Error) -> any Error {
        var current = error
        while let wrapped = current as? RuntimeError, let cause = wrapped.cause {
            current = cause
        }
        return current
    }
}
