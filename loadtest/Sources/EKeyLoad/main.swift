import ArgumentParser
import AsyncHTTPClient
import Crypto
import EKeyProtocol
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOSSL

/// `ekey-load`: an HTTP/2 (TLS, ALPN) load generator for E-Key and the proxies it is
/// compared with. Credentials are prepared before the timed phase: tokens come from the
/// real issuer (or are signed locally for the JWT baselines) and every request gets its
/// own DPoP proof, signed in advance, so the generator's own signing never limits the
/// figure. Latency goes into an HDR histogram; errors are counted by status.
@main
struct EKeyLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-load",
        abstract: "Load an E-Key gateway, issuer or baseline proxy over HTTP/2 and print throughput and latency.")

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        /// No credentials (upstream direct, nginx).
        case plain
        /// `Authorization: Bearer <ES256 JWT>` signed with `--jwt-key` (HAProxy jwt_verify ×1).
        case jwt
        /// Bearer JWT plus a second JWT in `DPoP` (HAProxy jwt_verify ×2).
        case jwt2
        /// A DPoP-bound E-Key from the issuer, a fresh pre-signed proof per request.
        case dpop
        /// An mTLS-bound E-Key from the issuer with a large limit, over the client certificate.
        case mtls
        /// `POST /token` against the issuer itself (mTLS client), tokens per second.
        case issue
    }

    @Option(help: "Target URL (for dpop and mtls: the gateway URL of the protected route).")
    var url: String
    @Option(help: "What to send: \(Mode.allCases.map(\.rawValue).joined(separator: ", ")).")
    var mode: Mode = .plain
    @Option(help: "Requests in the timed phase.")
    var requests = 20_000
    @Option(help: "Requests in flight at once (HTTP/2 streams).")
    var concurrency = 64
    @Option(help: "TCP connections the streams are spread over.")
    var connections = 2
    @Option(help: "HTTP method.")
    var method = "POST"
    @Option(help: "Request body.")
    var body = "{\"amount\":10}"
    @Option(help: "CA file that signs the target's certificate.")
    var ca: String?
    @Option(help: "Client certificate (PEM), for mTLS.")
    var cert: String?
    @Option(help: "Client key (PEM), for mTLS.")
    var key: String?
    @Option(help: "Issuer base URL, for dpop, mtls and issue modes.")
    var issuer: String?
    @Option(help: "Audience of the requested tokens (the route's audience).")
    var audience = "https://api.example.com"
    @Option(help: "Public URL the DPoP proofs name (htu); defaults to --url.")
    var htu: String?
    @Option(help: "Capability action requested from the issuer.")
    var action = "POST:/payments"
    @Option(help: "ES256 private key (PEM) that signs the baseline JWTs (jwt, jwt2 modes).")
    var jwtKey: String?
    @Option(help: "A label for the JSON output.")
    var label = "run"
    @Flag(help: "Print one JSON object instead of the human line.")
    var json = false

    func run() async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["h2", "http/1.1"]
        if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        if let cert, let key {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(5), read: .seconds(30)))
        configuration.httpVersion = .automatic
        let clients = (0..<max(1, connections)).map { _ in HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration) }
        do {
            try await measure(clients)
        } catch {
            for client in clients { try? await client.shutdown() }
            throw error
        }
        for client in clients { try? await client.shutdown() }
    }

    func measure(_ clients: [HTTPClient]) async throws {
        let prepared = try await prepare(client: clients[0])
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var statuses: [Int: Int] = [:]
        var failures = 0
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
            var next = 0
            func submit() {
                let index = next
                next += 1
                let client = clients[index % clients.count]
                let request = prepared.request(index)
                group.addTask {
                    let sent = ContinuousClock.now
                    do {
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 16 << 20)
                        return (Int(response.status.code), Self.microseconds(ContinuousClock.now - sent))
                    } catch {
                        return (-1, Self.microseconds(ContinuousClock.now - sent))
                    }
                }
            }
            for _ in 0..<min(concurrency, requests) { submit() }
            while let (status, latency) = try await group.next() {
                if status < 0 { failures += 1 } else { statuses[status, default: 0] += 1 }
                _ = histogram.record(latency)
                if next < requests { submit() }
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let report = Report(
            label: label, mode: mode.rawValue, requests: requests, concurrency: concurrency, connections: connections, seconds: seconds,
            requestsPerSecond: Double(requests) / seconds,
            p50: Double(histogram.valueAtPercentile(50)) / 1000, p90: Double(histogram.valueAtPercentile(90)) / 1000,
            p99: Double(histogram.valueAtPercentile(99)) / 1000, p999: Double(histogram.valueAtPercentile(99.9)) / 1000,
            statuses: Dictionary(uniqueKeysWithValues: statuses.map { (String($0.key), $0.value) }), failures: failures)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.line)
        }
    }

    static func microseconds(_ duration: Duration) -> UInt64 {
        UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
    }

    /// Everything the timed phase sends, made in advance.
    struct Prepared: Sendable {
        let url: String
        let method: HTTPMethod
        let body: String
        let headers: @Sendable (Int) -> [(String, String)]

        func request(_ index: Int) -> HTTPClientRequest {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers(index) { request.headers.add(name: name, value: value) }
            if !body.isEmpty {
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
            }
            return request
        }
    }

    func prepare(client: HTTPClient) async throws -> Prepared {
        let method = HTTPMethod(rawValue: self.method)
        switch mode {
        case .plain:
            return Prepared(url: url, method: method, body: body, headers: { _ in [] })
        case .jwt, .jwt2:
            guard let jwtKey else { throw ValidationError("--jwt-key is required for \(mode.rawValue)") }
            let key = PrivateSigningKey.p256(try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: jwtKey, encoding: .utf8)))
            let now = Int64(Date().timeIntervalSince1970)
            let pool = try (0..<1000).map { index -> String in
                try JWSCompact.sign(
                    header: ["typ": "JWT"],
                    payload: JSONValue.object(["sub": "load", "iat": .integer(now), "exp": .integer(now + 3600), "jti": .string("j\(index)")]).serializedBytes(),
                    using: key)
            }
            let two = mode == .jwt2
            return Prepared(url: url, method: method, body: body) { index in
                let token = pool[index % pool.count]
                return two ? [("authorization", "Bearer \(token)"), ("dpop", pool[(index + 1) % pool.count])] : [("authorization", "Bearer \(token)")]
            }
        case .issue:
            let request = JSONValue.object([
                "aud": .string(audience), "cap": ["action": .string(action), "limit": 1], "ttl": 30, "bind": "mTLS",
            ]).serialized()
            return Prepared(url: url, method: .POST, body: request, headers: { _ in [] })
        case .dpop:
            let proofKey = PrivateSigningKey(generating: .es256)
            let token = try await requestToken(client: client, bind: "DPoP", jwk: proofKey.publicKey.jwk, limit: requests + 10)
            let target = htu ?? url
            let now = Int64(Date().timeIntervalSince1970)
            let hash = EKeyToken.accessTokenHash(token)
            let proofs = try (0..<requests).map { _ in
                try DPoPProof(method: self.method, url: target, issuedAt: now, accessTokenHash: hash).signed(with: proofKey)
            }
            return Prepared(url: url, method: method, body: body) { index in
                [("authorization", "DPoP \(token)"), ("dpop", proofs[index])]
            }
        case .mtls:
            let token = try await requestToken(client: client, bind: "mTLS", jwk: nil, limit: requests + 10)
            return Prepared(url: url, method: method, body: body) { _ in [("authorization", "EKey \(token)")] }
        }
    }

    /// One token from the issuer over mTLS (the load generator's client certificate).
    func requestToken(client: HTTPClient, bind: String, jwk: JWK?, limit: Int) async throws -> String {
        guard let issuer else { throw ValidationError("--issuer is required for \(mode.rawValue)") }
        var members: [String: JSONValue] = [
            "aud": .string(audience), "cap": ["action": .string(action), "limit": .integer(Int64(limit))], "ttl": 60, "bind": .string(bind),
        ]
        if let jwk { members["jwk"] = jwk.jsonValue }
        var request = HTTPClientRequest(url: issuer + "/token")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: JSONValue.object(members).serializedBytes()))
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created, let token = try StrictJSONParser().parseObject(Array(bytes.readableBytesView))["token"]?.stringValue else {
            throw ValidationError("the issuer refused the token request (\(response.status.code)): \(String(buffer: bytes))")
        }
        return token
    }
}

/// One run's figures.
struct Report: Encodable {
    let label: String
    let mode: String
    let requests: Int
    let concurrency: Int
    let connections: Int
    let seconds: Double
    let requestsPerSecond: Double
    let p50: Double
    let p90: Double
    let p99: Double
    let p999: Double
    let statuses: [String: Int]
    let failures: Int

    enum CodingKeys: String, CodingKey {
        case label, mode, requests, concurrency, connections, seconds, statuses, failures
        case requestsPerSecond = "rps"
        case p50 = "p50_ms"
        case p90 = "p90_ms"
        case p99 = "p99_ms"
        case p999 = "p999_ms"
    }

    var line: String {
        let codes = statuses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return String(
            format: "%@ %@: %.0f req/s over %.2f s, p50 %.2f ms p90 %.2f ms p99 %.2f ms p99.9 %.2f ms, statuses %@, failures %d",
            label, mode, requestsPerSecond, seconds, p50, p90, p99, p999, codes, failures)
    }
}
