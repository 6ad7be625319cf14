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
        /// A fresh limit-1 DPoP-bound E-Key per request (all issued before the timed phase),
        /// each with its own proof: the gateway verifies every token's signature.
        case dpopFresh = "dpop-fresh"
        /// An mTLS-bound E-Key from the issuer with a large limit, over the client certificate.
        case mtls
        /// `POST /token` against the issuer itself (mTLS client), tokens per second.
        case issue
        /// The limit-1 flow, as `EKeyClient` runs it: each call first gets a limit-1
        /// DPoP-bound token from `--issuer`, then calls `--url` with a proof signed for that
        /// token; the latency is the two steps together.
        case flow
        /// The soak mix through a gateway, for `--duration` seconds: valid DPoP calls (fresh
        /// proof signed per request, token renewed every 20 s), replays of a proof the gateway
        /// already accepted, and invalid tokens (garbage, unknown `kid`, forged signature).
        case mixed
    }

    /// How the timed phase sends.
    enum Engine: String, ExpressibleByArgument, CaseIterable {
        /// AsyncHTTPClient, a task per request, at most `--concurrency` in flight.
        case client
        /// ``PacedHTTP2Load``: one event loop, a stream per request sent at its scheduled
        /// time (`--rate`), whatever is still in flight; for latency at a rate.
        case paced
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
    @Option(help: "Issuer base URL, for dpop, mtls, mixed and issue modes.")
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
    @Option(help: "mixed mode: run for this many seconds (replaces --requests).")
    var duration: Double?
    @Option(help: "At most this many requests per second, paced from the start (0: as fast as the concurrency allows).")
    var rate: Double = 0
    @Option(help: "How the timed phase sends: client (AsyncHTTPClient, --concurrency in flight) or paced (one event loop, each request at its time; needs --rate and an https URL).")
    var engine: Engine = .client
    @Option(help: "mixed mode: percentage of requests that replay an accepted proof.")
    var replayPercent = 20
    @Option(help: "mixed mode: percentage of requests with an invalid token.")
    var invalidPercent = 10

    func validate() throws {
        if duration != nil, mode != .mixed { throw ValidationError("--duration is only for --mode mixed") }
        if mode == .mixed, duration == nil { throw ValidationError("--mode mixed needs --duration") }
        if engine == .paced {
            guard rate > 0 else { throw ValidationError("--engine paced sends at a fixed rate: give --rate") }
            guard url.hasPrefix("https://") else { throw ValidationError("--engine paced speaks HTTP/2 over TLS only: give an https:// --url") }
            guard mode != .flow, mode != .mixed else { throw ValidationError("--engine paced sends prepared requests; use --engine client for --mode \(mode.rawValue)") }
        }
        guard replayPercent >= 0, invalidPercent >= 0, replayPercent + invalidPercent <= 100 else {
            throw ValidationError("--replay-percent and --invalid-percent must be >= 0 and add up to at most 100")
        }
    }

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
            if mode == .mixed {
                try await soak(clients)
            } else if engine == .paced {
                try await measurePaced(clients[0], tls: tls)
            } else {
                try await measure(clients)
            }
        } catch {
            for client in clients { try? await client.shutdown() }
            throw error
        }
        for client in clients { try? await client.shutdown() }
    }

    /// Prints the report: one JSON object with `--json`, else the human line.
    func emit(_ report: Report) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.line)
        }
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
                        var request = request
                        if let flow = prepared.flow { request = try await flow(client, request) }
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 16 << 20)
                        return (Int(response.status.code), Self.microseconds(ContinuousClock.now - sent))
                    } catch {
                        return (-1, Self.microseconds(ContinuousClock.now - sent))
                    }
                }
            }
            func pace() async throws {
                guard rate > 0 else { return }
                let due = started + .microseconds(Int64(Double(next) / rate * 1_000_000))
                if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
            }
            for _ in 0..<min(concurrency, requests) {
                try await pace()
                submit()
            }
            while let (status, latency) = try await group.next() {
                if status < 0 { failures += 1 } else { statuses[status, default: 0] += 1 }
                _ = histogram.record(latency)
                if next < requests {
                    try await pace()
                    submit()
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        try emit(
            Report(
                label: label, mode: mode.rawValue, requests: requests, concurrency: concurrency, connections: connections, seconds: seconds,
                histogram: histogram, statuses: statuses, failures: failures))
    }

    /// The timed phase on ``PacedHTTP2Load``: credentials prepared as for the client engine.
    func measurePaced(_ client: HTTPClient, tls: TLSConfiguration) async throws {
        let prepared = try await prepare(client: client)
        guard let target = URL(string: url), let host = target.host else { throw ValidationError("--url \(url) is not a URL") }
        let port = target.port ?? 443
        let path = (target.path.isEmpty ? "/" : target.path) + (target.query.map { "?" + $0 } ?? "")
        var http2 = tls
        http2.applicationProtocols = ["h2"]
        let load = PacedHTTP2Load(host: host, port: port, authority: "\(host):\(port)", tls: http2, connections: max(1, connections))
        let body = Array(prepared.body.utf8)
        let method = prepared.method.rawValue
        let outcome = try await load.run(rate: rate, count: requests) { index in
            var headers = prepared.headers(index)
            if !body.isEmpty { headers.append(("content-type", "application/json")) }
            return .init(method: method, path: path, headers: headers, body: body)
        }
        var report = Report(
            label: label, mode: mode.rawValue, requests: requests, concurrency: 0, connections: connections, seconds: outcome.seconds,
            histogram: outcome.histogram, statuses: outcome.statuses, failures: outcome.failures)
        report.lateSends = outcome.lateSends
        report.maximumLatenessMilliseconds = outcome.maximumLatenessMilliseconds
        try emit(report)
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
        /// The flow mode's first step, timed with the call: completes the request with credentials.
        var flow: (@Sendable (HTTPClient, HTTPClientRequest) async throws -> HTTPClientRequest)? = nil

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
        case .dpopFresh:
            let proofKey = PrivateSigningKey(generating: .es256)
            let jwk = proofKey.publicKey.jwk
            let tokens = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var tokens = [String](repeating: "", count: requests)
                var next = 0
                func issueNext() {
                    let index = next
                    next += 1
                    group.addTask { (index, try await requestToken(client: client, bind: "DPoP", jwk: jwk, limit: 1)) }
                }
                while next < min(concurrency, requests) { issueNext() }
                while let (index, token) = try await group.next() {
                    tokens[index] = token
                    if next < requests { issueNext() }
                }
                return tokens
            }
            let target = htu ?? url
            let now = Int64(Date().timeIntervalSince1970)
            let proofs = try tokens.map { token in
                try DPoPProof(method: self.method, url: target, issuedAt: now, accessTokenHash: EKeyToken.accessTokenHash(token)).signed(with: proofKey)
            }
            return Prepared(url: url, method: method, body: body) { index in
                [("authorization", "DPoP \(tokens[index])"), ("dpop", proofs[index])]
            }
        case .flow:
            let proofKey = PrivateSigningKey(generating: .es256)
            let jwk = proofKey.publicKey.jwk
            let target = htu ?? url
            let method = self.method
            var prepared = Prepared(url: url, method: HTTPMethod(rawValue: method), body: body, headers: { _ in [] })
            prepared.flow = { client, request in
                let token = try await requestToken(client: client, bind: "DPoP", jwk: jwk, limit: 1)
                let proof = try DPoPProof(
                    method: method, url: target, issuedAt: Int64(Date().timeIntervalSince1970), accessTokenHash: EKeyToken.accessTokenHash(token)
                ).signed(with: proofKey)
                var request = request
                request.headers.add(name: "authorization", value: "DPoP \(token)")
                request.headers.add(name: "dpop", value: proof)
                return request
            }
            return prepared
        case .mtls:
            let token = try await requestToken(client: client, bind: "mTLS", jwk: nil, limit: requests + 10)
            return Prepared(url: url, method: method, body: body) { _ in [("authorization", "EKey \(token)")] }
        case .mixed:
            throw ValidationError("mixed mode prepares nothing in advance")
        }
    }

    /// What a mixed-mode request is, and the status it must get.
    enum Kind: String, CaseIterable {
        case valid, replay, invalid
    }

    /// Mixed mode: requests are made as they are sent (proofs must be fresh over a long run),
    /// in fixed proportions spread evenly over the sequence, at most `--rate` per second.
    func soak(_ clients: [HTTPClient]) async throws {
        guard let duration else { throw ValidationError("--mode mixed needs --duration") }
        let proofKey = PrivateSigningKey(generating: .es256)
        let target = htu ?? url
        let tokenLimit = 100_000_000
        var token = try await requestToken(client: clients[0], bind: "DPoP", jwk: proofKey.publicKey.jwk, limit: tokenLimit)
        var tokenIssued = ContinuousClock.now
        var lastAccepted: [(String, String)]?
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var statuses: [Int: Int] = [:]
        var byKind: [Kind: [Int: Int]] = [:]
        var failures = 0
        var sent = 0
        let started = ContinuousClock.now
        let end = started + .milliseconds(Int64(duration * 1000))
        var nextProgress = started + .seconds(60)

        /// Kind of the request at `index`: the fractional parts of index × golden ratio are
        /// spread evenly over [0, 1), so each kind gets its share, interleaved.
        func kindOf(_ index: Int) -> Kind {
            let x = (Double(index) * 0.6180339887498949).truncatingRemainder(dividingBy: 1) * 100
            if x < Double(invalidPercent) { return .invalid }
            if x < Double(invalidPercent + replayPercent), lastAccepted != nil { return .replay }
            return .valid
        }
        func headers(_ kind: Kind, _ index: Int) throws -> [(String, String)] {
            let proof = try DPoPProof(
                method: method, url: target, issuedAt: Int64(Date().timeIntervalSince1970), accessTokenHash: EKeyToken.accessTokenHash(token)
            ).signed(with: proofKey)
            switch kind {
            case .valid:
                return [("authorization", "DPoP \(token)"), ("dpop", proof)]
            case .replay:
                return lastAccepted ?? []
            case .invalid:
                switch index % 3 {
                case 0:
                    return [("authorization", "DPoP not.a.token"), ("dpop", proof)]
                default:
                    // The real claims, signed by a key the publisher never saw: under a fresh
                    // unknown kid (each one may cost the gateway a JWKS refresh, at most one a
                    // second) or under the real kid (the signature does not verify).
                    let jws = try JWSCompact(parsing: token)
                    var header = jws.header
                    if index % 3 == 1 { header["kid"] = .string("soak-\(DPoPProof.randomJTI())") }
                    let forged = try JWSCompact.sign(header: header, payload: jws.payload, using: PrivateSigningKey(generating: .es256))
                    return [("authorization", "DPoP \(forged)"), ("dpop", proof)]
                }
            }
        }

        try await withThrowingTaskGroup(of: (Kind, Int, UInt64, [(String, String)]).self) { group in
            func submit() throws {
                let index = sent
                sent += 1
                let kind = kindOf(index)
                let client = clients[index % clients.count]
                var request = HTTPClientRequest(url: url)
                request.method = HTTPMethod(rawValue: method)
                let requestHeaders = try headers(kind, index)
                for (name, value) in requestHeaders { request.headers.add(name: name, value: value) }
                if !body.isEmpty {
                    request.headers.add(name: "content-type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: body))
                }
                group.addTask {
                    let start = ContinuousClock.now
                    do {
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 16 << 20)
                        return (kind, Int(response.status.code), Self.microseconds(ContinuousClock.now - start), requestHeaders)
                    } catch {
                        return (kind, -1, Self.microseconds(ContinuousClock.now - start), requestHeaders)
                    }
                }
            }
            for _ in 0..<max(1, concurrency) { try submit() }
            while let (kind, status, latency, requestHeaders) = try await group.next() {
                if status < 0 { failures += 1 } else { statuses[status, default: 0] += 1 }
                byKind[kind, default: [:]][status, default: 0] += 1
                _ = histogram.record(latency)
                if kind == .valid, status == 200 { lastAccepted = requestHeaders }
                let now = ContinuousClock.now
                if now >= nextProgress {
                    nextProgress = nextProgress + .seconds(60)
                    let codes = statuses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    FileHandle.standardError.write(Data("ekey-load: \(sent) requests sent, statuses \(codes), failures \(failures)\n".utf8))
                }
                guard now < end else { continue }
                if now - tokenIssued >= .seconds(20) {
                    token = try await requestToken(client: clients[0], bind: "DPoP", jwk: proofKey.publicKey.jwk, limit: tokenLimit)
                    tokenIssued = ContinuousClock.now
                }
                if rate > 0 {
                    let due = started + .microseconds(Int64(Double(sent) / rate * 1_000_000))
                    if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
                }
                try submit()
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var report = Report(
            label: label, mode: mode.rawValue, requests: sent, concurrency: concurrency, connections: connections, seconds: seconds,
            histogram: histogram, statuses: statuses, failures: failures)
        report.kinds = Dictionary(uniqueKeysWithValues: byKind.map { kind, codes in
            (kind.rawValue, Dictionary(uniqueKeysWithValues: codes.map { (String($0.key), $0.value) }))
        })
        try emit(report)
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
    /// mixed mode: statuses by kind of request (`valid`, `replay`, `invalid`; -1 = no answer).
    var kinds: [String: [String: Int]]? = nil
    /// The paced engine: sends later than 1 ms after their time, and the latest one's lateness.
    var lateSends: Int? = nil
    var maximumLatenessMilliseconds: Double? = nil

    enum CodingKeys: String, CodingKey {
        case label, mode, requests, concurrency, connections, seconds, statuses, failures, kinds
        case lateSends = "late_sends"
        case maximumLatenessMilliseconds = "max_lateness_ms"
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

extension Report {
    /// A report of `requests` answered in `seconds`, latencies (µs) in `histogram`.
    init(
        label: String, mode: String, requests: Int, concurrency: Int, connections: Int, seconds: Double, histogram: Histogram<UInt64>,
        statuses: [Int: Int], failures: Int
    ) {
        self.init(
            label: label, mode: mode, requests: requests, concurrency: concurrency, connections: connections, seconds: seconds,
            requestsPerSecond: Double(requests) / seconds,
            p50: Double(histogram.valueAtPercentile(50)) / 1000, p90: Double(histogram.valueAtPercentile(90)) / 1000,
            p99: Double(histogram.valueAtPercentile(99)) / 1000, p999: Double(histogram.valueAtPercentile(99.9)) / 1000,
            statuses: Dictionary(uniqueKeysWithValues: statuses.map { (String($0.key), $0.value) }), failures: failures)
    }
}
