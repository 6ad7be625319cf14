import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyEnvoyAuth
import EKeyGateway
import EKeyProtocol
import EKeyServer
import EKeyStore
import EKeyTestSupport
import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOPosix
import ServiceLifecycle
import Testing

/// The gRPC `envoy.service.auth.v3.Authorization/Check` service (`gateway.authorize.grpc_listen`)
/// driven by grpc-swift's generated client over real HTTP/2 and TLS, with the CheckRequests
/// Envoy's ext_authz filter sends (no Envoy binary here): the allow answer and its headers,
/// each refusal with the gateway's status, headers and body, who is answered, the
/// `include_peer_certificate` certificate, and the use count under concurrency.
@Suite struct AuthorizeGRPCTests {
    typealias CheckRequest = Envoy_Service_Auth_V3_CheckRequest
    typealias CheckResponse = Envoy_Service_Auth_V3_CheckResponse

    /// Envoy-style: TLS with required client certificates, answering only Envoy's SPIFFE ID.
    /// `dpop.max_age` for the tests that send one proof in several `Check` calls, each on
    /// a new gRPC connection: on a loaded machine those calls took over the default 5 s
    /// (the proof was then refused as stale, not as replayed).
    static let reusedProofMaxAge: Duration = .seconds(60)

    static func envoyAuthorize(_ harness: GatewayHarness) throws -> AuthorizeConfig {
        var settings = try AuthorizeListenerTests.envoyAuthorize(harness)
        settings.grpcListen = ListenAddress(host: "127.0.0.1", port: 0)
        return settings
    }

    /// Plaintext on loopback, answering `trusted`.
    static func loopbackAuthorize(trusting trusted: String = "127.0.0.1/32") -> AuthorizeConfig {
        AuthorizeConfig(
            listen: ListenAddress(host: "127.0.0.1", port: 0), tls: .none, trustedClients: [TrustedClient(parsing: trusted)!],
            grpcListen: ListenAddress(host: "127.0.0.1", port: 0))
    }

    /// A CheckRequest as Envoy's ext_authz filter builds it: lower-case header keys, the
    /// path with its query, and the client's certificate when `include_peer_certificate` is on.
    static func request(method: String = "POST", path: String = "/payments", headers: [(String, String)], certificate: String? = nil) -> CheckRequest {
        var request = CheckRequest()
        request.attributes.request.http.method = method
        request.attributes.request.http.path = path
        request.attributes.request.http.headers[":path"] = path
        request.attributes.request.http.headers[":method"] = method
        for (name, value) in headers {
            request.attributes.request.http.headers[name.lowercased()] = value
        }
        if let certificate { request.attributes.source.certificate = certificate }
        return request
    }

    /// Calls `Check` once per request on one HTTP/2 connection, over mTLS with the
    /// `certificate` files of the harness, or in plaintext.
    static func check(
        _ harness: GatewayHarness, port: Int, certificate: String? = nil, _ requests: [CheckRequest]
    ) async throws -> [CheckResponse] {
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if let certificate {
            security = .mTLS(
                certificateChain: [.file(path: harness.files.path("\(certificate).crt"), format: .pem)],
                privateKey: .file(path: harness.files.path("\(certificate).key"), format: .pem)
            ) { config in
                config.trustRoots = .certificates([.file(path: harness.files.path("ca.crt"), format: .pem)])
                config.serverCertificateVerification = .noHostnameVerification
            }
        } else {
            security = .plaintext
        }
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security)
        return try await withGRPCClient(transport: transport) { client in
            let authorization = Envoy_Service_Auth_V3_Authorization.Client(wrapping: client)
            return try await withThrowingTaskGroup(of: (Int, CheckResponse).self) { group in
                for (index, request) in requests.enumerated() {
                    group.addTask { (index, try await authorization.check(request)) }
                }
                var answers = [CheckResponse?](repeating: nil, count: requests.count)
                for try await (index, answer) in group { answers[index] = answer }
                return answers.map { $0! }
            }
        }
    }

    static func check(_ harness: GatewayHarness, port: Int, certificate: String? = nil, _ request: CheckRequest) async throws -> CheckResponse {
        try await check(harness, port: port, certificate: certificate, [request])[0]
    }

    @Test func allowedCallsCarryTheIdentityHeadersToSetUpstream() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: try Self.envoyAuthorize(harness)) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 2)
            let answer = try await Self.check(
                harness, port: ports.authorizeGRPC[0], certificate: "edge",
                Self.request(path: "/payments?x=1", headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))]))
            #expect(answer.status.code == 0, "\(answer)")
            guard case .okResponse(let ok) = answer.httpResponse else {
                Issue.record("no ok_response: \(answer)")
                return
            }
            let headers = Dictionary(ok.headers.map { ($0.header.key.lowercased(), $0.header.value) }, uniquingKeysWith: { first, _ in first })
            #expect(headers["x-ekey-sub"] == harness.workloadID)
            #expect(headers["x-ekey-action"] == "POST:/payments")
            #expect(headers["x-ekey-use"] == "1/2")
            #expect(headers["x-ekey-trace"]?.isEmpty == false)
            #expect(Set(headers.keys) == ["x-ekey-sub", "x-ekey-action", "x-ekey-use", "x-ekey-trace"], "only the X-EKey-* headers go upstream")
            #expect(ok.headers.allSatisfy { $0.appendAction == .overwriteIfExistsOrAdd }, "a client-sent X-EKey-* is replaced, never appended to")
        }
    }

    @Test func everyRefusalIsTheGatewaysStatusHeadersAndBody() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: try Self.envoyAuthorize(harness), proofMaxAge: Self.reusedProofMaxAge) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 5)
            func ask(method: String = "POST", path: String = "/payments", _ headers: [(String, String)]) async throws -> CheckResponse {
                try await Self.check(harness, port: ports.authorizeGRPC[0], certificate: "edge", Self.request(method: method, path: path, headers: headers))
            }
            func dpop(_ token: String, method: String = "POST", path: String = "/payments") throws -> [(String, String)] {
                [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token, method: method, path: path))]
            }
            let headers = try dpop(token)
            #expect(try await ask(headers).status.code == 0)

            let replay = Refusal(try await ask(headers))
            #expect(replay.grpcCode == 16 && replay.httpStatus == 401 && replay.error == "replay_detected", "\(replay)")
            #expect(replay.headers["www-authenticate"] == ["DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\""])
            #expect(replay.headers["content-type"]?.first?.hasPrefix("application/json") == true)
            #expect(replay.headers["cache-control"] == ["no-store"])

            // The proof names POST; the request is PUT.
            let wrongMethod = Refusal(try await ask(method: "PUT", headers))
            #expect(wrongMethod.grpcCode == 16 && wrongMethod.httpStatus == 401 && wrongMethod.error == "invalid_proof", "\(wrongMethod)")
            #expect(wrongMethod.headers["www-authenticate"]?.first?.contains("error=\"invalid_dpop_proof\"") == true)

            // Proofs for the request actually sent, outside the token's capability.
            let getPayments = Refusal(try await ask(method: "GET", try dpop(token, method: "GET")))
            #expect(getPayments.grpcCode == 7 && getPayments.httpStatus == 403 && getPayments.error == "capability_mismatch", "\(getPayments)")
            #expect(getPayments.headers["www-authenticate"] == ["DPoP error=\"insufficient_scope\", algs=\"ES256 EdDSA\""])
            let otherPath = Refusal(try await ask(path: "/orders", try dpop(token, path: "/orders")))
            #expect(otherPath.grpcCode == 7 && otherPath.httpStatus == 403, "\(otherPath)")

            let expiredToken = try harness.dpopToken(key, lifetime: 30, issuedAt: GatewayHarness.now - 120)
            let expired = Refusal(try await ask(try dpop(expiredToken)))
            #expect(expired.grpcCode == 16 && expired.httpStatus == 401 && expired.error == "expired_token", "\(expired)")
            #expect(expired.headers["www-authenticate"]?.first?.contains("error=\"invalid_token\"") == true)

            let noProof = Refusal(try await ask([("Authorization", "DPoP \(token)")]))
            #expect(noProof.grpcCode == 16 && noProof.httpStatus == 401 && noProof.error == "invalid_proof", "\(noProof)")

            let noToken = Refusal(try await ask([]))
            #expect(noToken.grpcCode == 16 && noToken.httpStatus == 401, "\(noToken)")
            #expect(noToken.headers["www-authenticate"]?.first?.hasPrefix("DPoP") == true)

            let hostile = Refusal(try await ask(path: "/payments/../payments", try dpop(token, path: "/payments/../payments")))
            #expect(hostile.grpcCode == 7 && hostile.httpStatus == 400, "\(hostile)")

            // The refusals counted nothing: the token's remaining uses still pass.
            #expect(try await ask(try dpop(token)).status.code == 0)
        }
    }

    @Test func untrustedCallersAreRefusedByIdentityAndByAddress() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: try Self.envoyAuthorize(harness), proofMaxAge: Self.reusedProofMaxAge) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 1)
            let request = Self.request(headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            // A valid client certificate of the same CA, but not Envoy's identity.
            let stranger = Refusal(try await Self.check(harness, port: ports.authorizeGRPC[0], certificate: "other", request))
            #expect(stranger.grpcCode == 7 && stranger.httpStatus == 403 && stranger.error == "access_denied", "\(stranger)")
            // Nothing was counted: the trusted proxy still gets the token's only use.
            #expect(try await Self.check(harness, port: ports.authorizeGRPC[0], certificate: "edge", request).status.code == 0)
        }
        try await harness.run(authorize: Self.loopbackAuthorize(trusting: "127.0.0.2/32")) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key)
            let request = Self.request(headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            let refused = Refusal(try await Self.check(harness, port: ports.authorizeGRPC[0], request))
            #expect(refused.grpcCode == 7 && refused.httpStatus == 403 && refused.error == "access_denied", "\(refused)")
        }
    }

    @Test func mTLSBoundTokensTakeTheCertificateEnvoyIncludes() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: try Self.envoyAuthorize(harness)) { ports in
            let token = try harness.mtlsToken(limit: 10)
            let pem = try String(contentsOfFile: harness.files.path("workload.crt"), encoding: .utf8)
            let escaped = pem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let otherPEM = try String(contentsOfFile: harness.files.path("other.crt"), encoding: .utf8)
            let otherEscaped = otherPEM.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            func ask(certificate: String?, _ extra: [(String, String)] = []) async throws -> CheckResponse {
                try await Self.check(
                    harness, port: ports.authorizeGRPC[0], certificate: "edge",
                    Self.request(headers: [("Authorization", "Bearer \(token)")] + extra, certificate: certificate))
            }
            #expect(try await ask(certificate: escaped).status.code == 0, "attributes.source.certificate binds the token")
            let hash = AuthorizeListenerTests.hex(harness.workloadCertificateSHA256)
            #expect(try await ask(certificate: escaped, [("X-Forwarded-Client-Cert", "Hash=\(hash)")]).status.code == 0, "agreeing XFCC")

            let other = Refusal(try await ask(certificate: otherEscaped))
            #expect(other.httpStatus == 401 && other.error == "invalid_proof", "another certificate: \(other)")
            let none = Refusal(try await ask(certificate: nil))
            #expect(none.httpStatus == 401 && none.error == "invalid_proof", "no certificate: Envoy's own TLS certificate never binds")
            let disagreeing = Refusal(try await ask(certificate: otherEscaped, [("X-Forwarded-Client-Cert", "Hash=\(hash)")]))
            #expect(disagreeing.httpStatus == 400, "the included certificate and XFCC disagree: \(disagreeing)")
            #expect(Refusal(try await ask(certificate: "not-a-certificate")).httpStatus == 400)
        }
    }

    @Test func aForgedCertificateFromAnUntrustedCallerBindsNothing() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run(authorize: try Self.envoyAuthorize(harness)) { ports in
            let token = try harness.mtlsToken(limit: 1)
            let pem = try String(contentsOfFile: harness.files.path("workload.crt"), encoding: .utf8)
            let escaped = pem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let hash = AuthorizeListenerTests.hex(harness.workloadCertificateSHA256)
            let forged = Self.request(headers: [("Authorization", "Bearer \(token)"), ("X-Forwarded-Client-Cert", "Hash=\(hash)")], certificate: escaped)
            let refused = Refusal(try await Self.check(harness, port: ports.authorizeGRPC[0], certificate: "other", forged))
            #expect(refused.httpStatus == 403 && refused.error == "access_denied", "\(refused)")
            #expect(try await Self.check(harness, port: ports.authorizeGRPC[0], certificate: "edge", forged).status.code == 0, "the one use is still there")
        }
    }

    @Test func sixtyParallelChecksForALimitThreeTokenAllowExactlyThree() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let redis = try RedisServer()
        defer { redis.shutdown() }
        try await harness.run(storeURL: redis.url, authorize: Self.loopbackAuthorize()) { ports in
            let key = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(key, limit: 3)
            let requests = try (0..<60).map { _ in
                Self.request(headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))])
            }
            let answers = try await Self.check(harness, port: ports.authorizeGRPC[0], requests)
            let allowed = answers.filter { $0.status.code == 0 }
            #expect(allowed.count == 3)
            let replays = answers.map(Refusal.init).filter { refusal in refusal.httpStatus == 401 && refusal.error == "replay_detected" }
            #expect(replays.count == 57)
            let uses = allowed.compactMap { answer -> String? in
                guard case .okResponse(let ok) = answer.httpResponse else { return nil }
                return ok.headers.first { $0.header.key.lowercased() == "x-ekey-use" }?.header.value
            }
            #expect(Set(uses) == ["1/3", "2/3", "3/3"])
        }
    }

    /// curl (an independent HTTP/2 and TLS client) sends an empty CheckRequest over TLS 1.3
    /// and over TLS 1.2: with `min_version: "1.3"`, only the first is answered.
    @Test func aTLS12ConnectionGetsNoAnswerWhenTheMinimumIs13() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let settings = try Self.envoyAuthorize(harness)
        #expect(settings.tls.files?.minVersion == .tls13, "the default minimum")
        try await harness.run(authorize: settings) { ports in
            func call(_ versionFlags: [String]) throws -> (status: Int32, output: String) {
                let frame = harness.files.path("empty-check.bin")
                try Data([0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: frame))
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments =
                    ["-sS", "--http2", "--max-time", "10", "--cacert", harness.files.path("ca.crt"), "--cert", harness.files.path("edge.crt"),
                     "--key", harness.files.path("edge.key"), "-H", "content-type: application/grpc", "-H", "te: trailers",
                     "--data-binary", "@\(frame)", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
                    + versionFlags + ["https://localhost:\(ports.authorizeGRPC[0])/envoy.service.auth.v3.Authorization/Check"]
                let output = Pipe()
                curl.standardOutput = output
                curl.standardError = output
                try curl.run()
                curl.waitUntilExit()
                return (curl.terminationStatus, String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }
            let modern = try call(["--tlsv1.3"])
            #expect(modern.status == 0 && modern.output.hasPrefix("200 2"), "TLS 1.3 is answered: \(modern)")
            let old = try call(["--tlsv1.2", "--tls-max", "1.2"])
            #expect(old.status != 0 || !old.output.hasPrefix("200"), "TLS 1.2 gets no answer: \(old)")
        }
    }

    @Test func aTakenPortIsAStartupErrorNamingTheKey() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let held = try HeldPort()
        defer { held.close() }
        var settings = Self.loopbackAuthorize()
        settings.grpcListen = ListenAddress(host: "127.0.0.1", port: held.port)
        let config = harness.gatewayConfig(port: 0, adminPort: 0, publisherPort: try FreePort.pick(), upstream: "http://127.0.0.1:9", authorize: settings)
        let logger = Logger(label: "test")
        let stores = try Stores.make(url: "memory://", eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let jwksClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let gateway = try Gateway(config: config, tls: try ServiceStartup.serverTLS(config.tls), store: stores.usage, jwksClient: jwksClient, logger: logger)
        do {
            try await ServiceGroup(configuration: .init(services: gateway.services(), logger: logger)).run()
            Issue.record("the gateway ran with its gRPC port taken")
        } catch {
            #expect(
                "\(error)".contains("gateway.authorize.grpc_listen: cannot listen on 127.0.0.1:\(held.port): the address is already in use"), "\(error)")
        }
        try await jwksClient.shutdown()
        await stores.shutdown()
    }

    /// A `CheckResponse` read as the HTTP answer Envoy sends the client.
    struct Refusal: CustomStringConvertible {
        var grpcCode: Int32
        var httpStatus: Int
        var headers: [String: [String]]
        var body: String
        var error: String? { (try? StrictJSONParser().parseObject(Array(body.utf8)))?["error"]?.stringValue }

        init(_ response: CheckResponse) {
            grpcCode = response.status.code
            guard case .deniedResponse(let denied) = response.httpResponse else {
                httpStatus = 0
                headers = [:]
                body = ""
                return
            }
            httpStatus = denied.status.code.rawValue
            headers = Dictionary(grouping: denied.headers, by: { $0.header.key.lowercased() }).mapValues { $0.map(\.header.value) }
            body = denied.body
        }

        var description: String { "gRPC \(grpcCode), HTTP \(httpStatus) \(headers) \(body)" }
    }
}
