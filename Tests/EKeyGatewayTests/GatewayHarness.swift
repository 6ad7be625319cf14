import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyGateway
import EKeyJWKS
import EKeyProtocol
import EKeyServer
import EKeyStore
import EKeyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// What the legacy upstream saw of one request.
struct SeenRequest: Sendable {
    var method: String
    var path: String
    var headers: [String: [String]]
    var bodyLength: Int
    var bodySHA256: String
    /// Whether the request came over HTTP/2 (known only for the TLS and h2c upstreams).
    var http2 = false
}

/// A legacy API behind the gateway: records every request; `/slow` answers after 3 s,
/// `/stall` sends its head and then stops, `/big/<n>` streams n MiB.
actor UpstreamRecorder {
    private(set) var seen: [SeenRequest] = []

    func record(_ request: SeenRequest) {
        seen.append(request)
    }

    var count: Int { seen.count }

    static func application(recorder: UpstreamRecorder, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(BasicRequestContext.self, recorder), configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "legacy-api"),
            onServerRunning: { await onRunning($0.localAddress?.port ?? port) })
    }

    /// The same API over HTTP/2 with prior knowledge and no TLS (an `h2c://` upstream). It
    /// closes connections idle for 1 s, so the gateway has to replace them.
    static func plaintextHTTP2Application(recorder: UpstreamRecorder, onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        Application(
            router: router(EKeyRequestContext.self, recorder), server: .plaintextHTTP2(configuration: .init(idleTimeout: .seconds(1))),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "legacy-api-h2c"),
            onServerRunning: { await onRunning($0.localAddress?.port ?? 0) })
    }

    /// The same API over TLS with ALPN `h2` and `http/1.1`, recording which one each request used.
    static func secureApplication(recorder: UpstreamRecorder, tls: TLSConfiguration, onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        Application(
            router: router(EKeyRequestContext.self, recorder), server: .ekeySecure(tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "legacy-api-tls"),
            onServerRunning: { await onRunning($0.localAddress?.port ?? 0) })
    }

    static func router<Context: RequestContext>(_ context: Context.Type, _ recorder: UpstreamRecorder) -> Router<Context> {
        let router = Router(context: Context.self)
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            router.on("**", method: method) { request, context in try await handle(request, context, recorder) }
        }
        return router
    }

    static func handle<Context: RequestContext>(_ request: Request, _ context: Context, _ recorder: UpstreamRecorder) async throws -> Response {
        let http2 = (context as? EKeyRequestContext)?.channel.parent != nil
        if request.uri.path == "/early" {
            await recorder.record(SeenRequest(method: request.method.rawValue, path: "/early", headers: [:], bodyLength: -1, bodySHA256: ""))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"early\":true}")))
        }
        var hasher = SHA256()
        var length = 0
        for try await chunk in request.body {
            length += chunk.readableBytes
            hasher.update(data: Array(chunk.readableBytesView))
        }
        var headers: [String: [String]] = [:]
        for field in request.headers {
            headers[field.name.canonicalName, default: []].append(field.value)
        }
        let path = request.uri.path
        await recorder.record(
            SeenRequest(
                method: request.method.rawValue, path: request.uri.description, headers: headers, bodyLength: length,
                bodySHA256: hasher.finalize().map { String(format: "%02x", $0) }.joined(), http2: http2))
        if path == "/slow" {
            try await Task.sleep(for: .seconds(6))
        }
        if path == "/stall" {
            let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
            continuation.yield(ByteBuffer(string: "partial"))
            Task {
                try? await Task.sleep(for: .seconds(8))
                continuation.finish()
            }
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(asyncSequence: stream))
        }
        if path == "/stall-sized" {
            // Announces 100 bytes, sends 7, then stalls: a small response the gateway reads whole.
            return Response(
                status: .ok, headers: [.contentType: "text/plain"],
                body: ResponseBody(contentLength: 100) { writer in
                    try await writer.write(ByteBuffer(string: "partial"))
                    try await Task.sleep(for: .seconds(8))
                    try await writer.finish(nil)
                })
        }
        if path.hasPrefix("/big/"), let mebibytes = Int(path.dropFirst(5)) {
            let chunk = ByteBuffer(repeating: 0x61, count: 1 << 20)
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody { writer in
                    for _ in 0..<mebibytes { try await writer.write(chunk) }
                    try await writer.finish(nil)
                })
        }
        var responseHeaders: HTTPFields = [.contentType: "application/json"]
        if !http2 {
            // Hop-by-hop headers the gateway must strip (HTTP/2 forbids them altogether).
            responseHeaders[.connection] = "keep-alive"
            responseHeaders[HTTPField.Name("Keep-Alive")!] = "timeout=5"
        }
        return Response(
            status: request.method == .post ? .created : .ok, headers: responseHeaders,
            body: .init(byteBuffer: ByteBuffer(string: "{\"ok\":true,\"length\":\(length)}")))
    }
}

/// The test's HTTP clients, shut down when the stack stops, even after a failure.
final class ClientRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var clients: [HTTPClient] = []

    func add(_ client: HTTPClient) {
        lock.withLock { clients.append(client) }
    }

    func shutdownAll() async {
        let all = lock.withLock { () -> [HTTPClient] in
            defer { clients = [] }
            return clients
        }
        for client in all { try? await client.shutdown() }
    }
}

/// A running stack for gateway tests: publisher (in-process, memory keys), the legacy
/// upstream, and one or more gateways, all on loopback with real TLS and HTTP/2.
struct GatewayHarness {
    /// How the gateway reaches the test upstream.
    enum UpstreamProtocol: Sendable {
        /// `http://`: HTTP/1.1 without TLS.
        case http1
        /// `https://` with the harness CA: HTTP/2 (or HTTP/1.1) chosen by ALPN.
        case tls
        /// `h2c://`: HTTP/2 with prior knowledge, without TLS.
        case h2c
        /// An upstream the test runs itself, at this URL (the recorder is not started).
        case external(String)
    }

    static let issuer = "https://issuer.test"
    static let audience = "https://api.test"
    static let issuerID = "spiffe://example.org/ekey/issuer"

    let files: TemporaryFiles
    let pki: DevelopmentPKI
    let signingKey = PrivateSigningKey(generating: .es256)
    let keyID = "issuer-1"
    let workloadID = "spiffe://example.org/checkout"
    let workloadCertificateSHA256: [UInt8]

    init() throws {
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        try files.write("issuer", pki.issueClient(commonName: "issuer", spiffeID: Self.issuerID))
        let workload = try pki.issueClient(commonName: "checkout", spiffeID: workloadID)
        try files.write("workload", workload)
        workloadCertificateSHA256 = Array(SHA256.hash(data: workload.certificateDER))
        try files.write("other", pki.issueClient(commonName: "other", spiffeID: "spiffe://example.org/other"))
        try files.write("nonce.key", String(repeating: "k", count: 40) + "\n")
    }

    /// Ports of a running stack.
    struct Ports {
        var publisher: Int
        var upstream: Int
        var gateways: [Int]
        var admins: [Int]
        /// Each gateway's `gateway.authorize` listener, when the run turned it on.
        var authorizes: [Int] = []
        /// Each gateway's gRPC `Check` service (`gateway.authorize.grpc_listen`), when the run turned it on.
        var authorizeGRPC: [Int] = []
        /// The publisher's key store, for tests that rotate or revoke keys.
        var publishedKeys: StoreBackedKeys
    }

    /// The gateway config for this harness.
    func gatewayConfig(
        port: Int, adminPort: Int, publisherPort: Int, upstream: String, upstreamCA: String? = nil, nonce: Bool = false, authorize: AuthorizeConfig? = nil, timeouts: TimeoutsConfig = .init(connect: .seconds(1), firstByte: .seconds(3), idle: .seconds(2)),
        proofMaxAge: Duration = DPoPConfig().maxAge
    ) -> GatewayConfig {
        GatewayConfig(
            listen: ListenAddress(host: "127.0.0.1", port: port), adminListen: ListenAddress(host: "127.0.0.1", port: adminPort),
            tls: .enabled(TLSFiles(cert: files.path("server.crt"), key: files.path("server.key"), clientCA: files.path("ca.crt"), clientAuth: .optional)),
            issuer: Self.issuer,
            jwks: JWKSClientConfig(url: URL(string: "https://localhost:\(publisherPort)/.well-known/jwks.json")!, ca: files.path("ca.crt")),
            dpop: DPoPConfig(maxAge: proofMaxAge, nonce: nonce, nonceSecretFile: files.path("nonce.key")),
            timeouts: timeouts,
            routes: [
                RouteConfig(
                    prefix: "/", upstream: URL(string: upstream)!, audience: Self.audience, publicOrigin: URL(string: Self.audience)!, upstreamCA: upstreamCA,
                    timeouts: timeouts)
            ],
            authorize: authorize)
    }

    /// Runs publisher, upstream and `gateways` gateways sharing `storeURL`; registers the
    /// signing key before `body` runs. `jwksClock` times the gateways' key-set caches.
    func run<R: Sendable>(
        gateways: Int = 1, storeURL: String = "memory://", nonce: Bool = false, authorize: AuthorizeConfig? = nil, upstreamUp: Bool = true, upstream upstreamProtocol: UpstreamProtocol = .http1,
        jwksMaxAge: Duration = .seconds(30), jwksClock: any Clock<Duration> = ContinuousClock(),
        proofMaxAge: Duration = DPoPConfig().maxAge, _ body: (Ports) async throws -> R
    ) async throws -> R {
        let logger = Logger(label: "test")
        let publisherTLS = try TLSSetup.server(
            certificateFile: files.path("server.crt"), keyFile: files.path("server.key"), clientCAFile: files.path("ca.crt"), clientCertificates: .optional)
        let publisherKeys = StoreBackedKeys(stores: try Stores.make(url: "memory://", eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger))
        let publisher = Publisher(
            settings: .init(authorizedIssuers: [Self.issuerID], admins: [], cacheMaxAge: jwksMaxAge), keys: publisherKeys,
            listeners: .init(host: "127.0.0.1", port: 0, tls: try ServerTLS(configuration: publisherTLS), adminHost: "127.0.0.1", adminPort: 0), logger: logger)
        let stores = try Stores.make(url: storeURL, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let jwksClient = try InternalHTTPClient.make(caFile: files.path("ca.crt"), certificateFile: nil, keyFile: nil)
        var policy = JWKSCache.Policy()
        policy.retryAfterFailure = .milliseconds(100)
        let deadUpstreamPort = upstreamUp ? 0 : try FreePort.pick()
        let recorder = self.recorder
        // Phase 1: publisher and upstream on kernel-assigned ports; phase 2: the gateways,
        // which need those ports in their config.
        let ownUpstream: Bool
        if case .external = upstreamProtocol { ownUpstream = false } else { ownUpstream = upstreamUp }
        let roles: Set<String> = ownUpstream ? ["jwks", "admin", "upstream"] : ["jwks", "admin"]
        let outcome: Result<R, any Error> = try await LiveServices.with(roles: roles, { report in
            var all = try publisher.services(onRunning: report)
            if ownUpstream {
                switch upstreamProtocol {
                case .http1:
                    all.append(UpstreamRecorder.application(recorder: recorder, port: 0) { port in await report("upstream", port) })
                case .tls:
                    all.append(UpstreamRecorder.secureApplication(recorder: recorder, tls: publisherTLS) { port in await report("upstream", port) })
                case .h2c:
                    all.append(UpstreamRecorder.plaintextHTTP2Application(recorder: recorder) { port in await report("upstream", port) })
                case .external:
                    break
                }
            }
            return all
        }) { infrastructure in
            let publisherPort = infrastructure["jwks"]!
            let upstreamPort = ownUpstream ? infrastructure["upstream"]! : deadUpstreamPort
            try await registerSigningKey(publisherPort: publisherPort)
            var gatewaySet: [GatewayServices] = []
            var gatewayRoles: Set<String> = []
            for index in 0..<gateways {
                let config = gatewayConfig(
                    port: 0, adminPort: 0, publisherPort: publisherPort,
                    upstream: upstreamProtocol.url(port: upstreamPort),
                    upstreamCA: upstreamProtocol.isTLS ? files.path("ca.crt") : nil, nonce: nonce, authorize: authorize, proofMaxAge: proofMaxAge)
                let gateway = try Gateway(
                    config: config, tls: try ServiceStartup.serverTLS(config.tls), store: stores.usage,
                    jwksClient: jwksClient, logger: logger, jwksPolicy: policy, jwksClock: jwksClock)
                gatewaySet.append(GatewayServices(gateway: gateway, index: index))
                gatewayRoles.formUnion(["gateway-\(index)", "admin-\(index)"] + (authorize == nil ? [] : ["authorize-\(index)"]))
                if authorize?.grpcListen != nil { gatewayRoles.insert("authorize_grpc-\(index)") }
            }
            let gatewaysOutcome = try await LiveServices.with(roles: gatewayRoles, { report in
                gatewaySet.flatMap { $0.make(report) }
            }) { gatewayPorts in
                let ports = Ports(
                    publisher: publisherPort, upstream: upstreamPort,
                    gateways: (0..<gateways).map { gatewayPorts["gateway-\($0)"]! }, admins: (0..<gateways).map { gatewayPorts["admin-\($0)"]! },
                    authorizes: authorize == nil ? [] : (0..<gateways).map { gatewayPorts["authorize-\($0)"]! },
                    authorizeGRPC: authorize?.grpcListen == nil ? [] : (0..<gateways).map { gatewayPorts["authorize_grpc-\($0)"]! },
                    publishedKeys: publisherKeys)
                let outcome: Result<R, any Error>
                do {
                    outcome = .success(try await body(ports))
                } catch {
                    outcome = .failure(error)
                }
                // Clients first: a server's graceful shutdown waits for the connections
                // still open to it (up to ConnectionLimits.idleCloseGrace for HTTP/2).
                await clients.shutdownAll()
                return outcome
            }
            try? await jwksClient.shutdown()
            return gatewaysOutcome
        }
        await clients.shutdownAll()
        try? await jwksClient.shutdown()
        await stores.shutdown()
        return try outcome.get()
    }

    /// One gateway's services, reporting its ports under indexed roles.
    struct GatewayServices {
        let gateway: Gateway
        let index: Int

        func make(_ report: @escaping @Sendable (String, Int) async -> Void) -> [any Service] {
            let index = self.index
            return gateway.services { role, port in await report("\(role)-\(index)", port) }
        }
    }

    let recorder = UpstreamRecorder()
    let clients = ClientRegistry()

    func waitForPort(_ port: Int) async throws {
        for _ in 0..<200 where !ServiceProcess.canConnect(port: port) {
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    func registerSigningKey(publisherPort: Int) async throws {
        let client = try InternalHTTPClient.make(caFile: files.path("ca.crt"), certificateFile: files.path("issuer.crt"), keyFile: files.path("issuer.key"))
        defer { Task { try? await client.shutdown() } }
        let registrar = KeyRegistrationClient(baseURL: "https://localhost:\(publisherPort)", client: client, logger: Logger(label: "test"))
        let registration = KeyRegistration(keyID: keyID, jwk: signingKey.publicKey.jwk.with(keyID: keyID, algorithm: .es256))
        var backoff = KeyRegistrationClient.Backoff()
        backoff.initialDelay = .milliseconds(50)
        backoff.maximumAttempts = 20
        _ = try await registrar.registerWithRetry(registration, backoff: backoff)
    }

    // MARK: Tokens and proofs

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    func claims(
        action: String = "POST:/payments", subcap: [String] = [], limit: Int = 1, lifetime: Int64 = 30, audience: String = GatewayHarness.audience,
        issuedAt: Int64 = GatewayHarness.now, confirmation: Confirmation
    ) throws -> EKeyClaims {
        EKeyClaims(
            issuer: Self.issuer, subject: workloadID, audience: audience, issuedAt: issuedAt, expiresAt: issuedAt + lifetime,
            capability: try Capability(action: CapabilityAction(parsing: action), limit: limit, subcapabilities: subcap.map { try CapabilityAction(parsing: $0) }),
            confirmation: confirmation, trace: EKeyClaims.randomTrace())
    }

    func dpopToken(_ proofKey: PrivateSigningKey, action: String = "POST:/payments", subcap: [String] = [], limit: Int = 1, lifetime: Int64 = 30, audience: String = GatewayHarness.audience, issuedAt: Int64 = GatewayHarness.now) throws -> String {
        try EKeyToken.sign(
            claims(action: action, subcap: subcap, limit: limit, lifetime: lifetime, audience: audience, issuedAt: issuedAt, confirmation: .jwkThumbprint(proofKey.publicKey.jwk.thumbprint)),
            keyID: keyID, bind: .dpop, using: signingKey)
    }

    func mtlsToken(limit: Int = 5) throws -> String {
        try EKeyToken.sign(
            claims(limit: limit, confirmation: .certificateThumbprint(Base64URL.encode(workloadCertificateSHA256))), keyID: keyID, bind: .mtls, using: signingKey)
    }

    func proof(_ key: PrivateSigningKey, token: String, method: String = "POST", path: String = "/payments", nonce: String? = nil, issuedAt: Int64 = GatewayHarness.now) throws -> String {
        try DPoPProof(method: method, url: Self.audience + path, issuedAt: issuedAt, accessTokenHash: EKeyToken.accessTokenHash(token), nonce: nonce).signed(with: key)
    }

    // MARK: Client

    func client(certificate: String? = nil, http1: Bool = false) throws -> HTTPClient {
        let client = try files.httpsClient(certificate: certificate, http1: http1, readTimeout: .seconds(15))
        clients.add(client)
        return client
    }

    /// GET on a plain-HTTP admin listener.
    func adminGet(port: Int, _ path: String) async throws -> String {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }
        let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    struct Answer {
        var status: Int
        var version: HTTPVersion
        var headers: HTTPHeaders
        var body: String
        var error: String? { (try? StrictJSONParser().parseObject(Array(body.utf8)))?["error"]?.stringValue }
        var challenges: [String] { headers["www-authenticate"] }
    }

    func send(
        _ client: HTTPClient, port: Int, _ method: HTTPMethod = .POST, _ path: String = "/payments", headers: [(String, String)] = [], body: ByteBuffer? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: "https://localhost:\(port)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let response = try await client.execute(request, timeout: .seconds(20))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), version: response.version, headers: response.headers, body: String(buffer: bytes))
    }
}

extension GatewayHarness.UpstreamProtocol {
    /// The route's upstream URL for a test upstream on `port`.
    func url(port: Int) -> String {
        switch self {
        case .http1: "http://127.0.0.1:\(port)"
        case .tls: "https://localhost:\(port)"
        case .h2c: "h2c://127.0.0.1:\(port)"
        case .external(let url): url
        }
    }

    /// Whether the route needs `upstream_ca` (the harness CA): the TLS recorder, or an external `https://` URL.
    var isTLS: Bool {
        switch self {
        case .tls: true
        case .external(let url): url.hasPrefix("https://")
        case .http1, .h2c: false
        }
    }
}
