import EKeyConfig
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import Testing

/// Request framing and header tricks sent through the gateway over HTTP/1.1 (hand-made
/// bytes) and HTTP/2 (hand-made frames), to every upstream kind, each recorded by a
/// ``RecordingUpstream``. The gateway runs as a ``GatewayProcess``, so a case that crashes
/// it is reported (and the gateway restarted) instead of ending the test run. Every case carries a valid token and proof for the request it
/// claims, so only framing is under test. Each case must end with the gateway refusing it
/// (4xx, or over HTTP/2 a reset stream) with nothing reaching the upstream, or forwarded
/// with ``BoundaryInvariant`` intact; some must be refused with 400 (RFC 9112 §6.3 and
/// §5.2: CL with TE, differing Content-Lengths, a transfer coding other than `chunked`
/// alone, obs-fold), and the controls must be forwarded.
@Suite
struct FramingCorpusTests {
    /// The upstream behind the gateway's route.
    enum UpstreamKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case http1 = "http://"
        case h2c = "h2c://"
        case httpsH2 = "https:// (ALPN h2)"
        case httpsHTTP1 = "https:// (ALPN http/1.1)"

        var testDescription: String { rawValue }

        func make(_ harness: GatewayHarness) throws -> RecordingUpstream {
            switch self {
            case .http1: return try RecordingUpstream(mode: .http1)
            case .h2c: return try RecordingUpstream(mode: .h2c)
            case .httpsH2, .httpsHTTP1:
                let tls = try TLSSetup.server(
                    certificateFile: harness.files.path("server.crt"), keyFile: harness.files.path("server.key"), clientCAFile: nil, clientCertificates: .none)
                return try RecordingUpstream(mode: .tls(alpn: self == .httpsH2 ? ["h2"] : ["http/1.1"]), tls: tls)
            }
        }

        /// The route's upstream URL (the TLS certificate names `localhost`).
        func url(port: Int) -> String {
            switch self {
            case .http1: "http://127.0.0.1:\(port)"
            case .h2c: "h2c://127.0.0.1:\(port)"
            case .httpsH2, .httpsHTTP1: "https://localhost:\(port)"
            }
        }

        /// The protocol every upstream connection must have used.
        var protocolName: String { self == .h2c || self == .httpsH2 ? "h2" : "http/1.1" }
    }

    /// How the test client talks to the gateway.
    enum Downstream: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case http1 = "HTTP/1.1"
        case http2 = "HTTP/2"

        var testDescription: String { rawValue }
    }

    /// What the gateway may do with a case.
    enum Rule: String, Sendable {
        /// A legal request: answered 2xx through the upstream, with the invariant intact.
        case forwarded
        /// Illegal per RFC 9112: answered 400, nothing forwarded.
        case badRequest = "400"
        /// Malformed: answered 4xx or its stream reset, nothing forwarded.
        case refused
        /// Refused as above, or forwarded with the invariant intact.
        case either
    }

    /// The token and proof a case carries.
    struct Credentials: Sendable {
        var token: String
        var proof: String
        var fields: [(String, String)] { [("Authorization", "DPoP \(token)"), ("DPoP", proof)] }
    }

    typealias HTTP1Bytes = @Sendable (Credentials) -> [UInt8]
    typealias HTTP2Request = @Sendable (Credentials) -> HTTP2Downstream.Request

    /// One corpus entry, with its HTTP/1.1 form, its HTTP/2 form, or both.
    struct FramingCase: Sendable, CustomStringConvertible {
        var name: String
        /// The request the token and proof are for; a forwarded case must reach the upstream as this.
        var method: String
        var path = "/payments"
        /// The token's action; `METHOD:path` when `nil`.
        var action: String?
        /// The body the upstream must receive when the case is forwarded; `nil`: not checked.
        var body: [UInt8]?
        var http1: (rule: Rule, bytes: HTTP1Bytes)?
        var http2: (rule: Rule, request: HTTP2Request)?

        var description: String { name }
    }

    /// The outcome of one case on one (downstream, upstream) pair.
    struct CaseResult: Sendable {
        var name: String
        var rule: Rule
        var outcome: DownstreamOutcome
        var violations: [String]
    }

    // MARK: Building requests

    static let json = Array("{\"amount\":1}".utf8)
    /// A complete request: what an upstream reads as a second request if the gateway sends it as an unframed body.
    static let smuggled = Array("GET /admin HTTP/1.1\r\nHost: localhost\r\nX-EKey-Sub: attacker\r\nX-EKey-Action: DELETE:/admin\r\n\r\n".utf8)

    static func chunked(_ body: [UInt8]) -> [UInt8] {
        Array("\(String(body.count, radix: 16))\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
    }

    /// HTTP/1.1 bytes: request line, `Host: localhost` unless `host` is false, the credentials,
    /// `lines` as given, an empty line and `body`; every line ends with `eol`.
    static func h1(_ method: String, _ lines: [String] = [], target: String = "/payments", body: [UInt8] = [], eol: String = "\r\n", host: Bool = true)
        -> HTTP1Bytes
    {
        { credentials in
            var head = "\(method) \(target) HTTP/1.1" + eol
            if host { head += "Host: localhost" + eol }
            for (name, value) in credentials.fields { head += "\(name): \(value)" + eol }
            for line in lines { head += line + eol }
            return Array((head + eol).utf8) + body
        }
    }

    /// An HTTP/2 request: the four pseudo-header fields (or `pseudo`), the credentials, `fields`, and `data`.
    static func h2(_ method: String, _ fields: [(String, String)] = [], path: String = "/payments", data: [[UInt8]] = [], pseudo: [(String, String)]? = nil)
        -> HTTP2Request
    {
        { credentials in
            let pseudo = pseudo ?? [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
            return HTTP2Downstream.Request(fields: pseudo + credentials.fields.map { ($0.lowercased(), $1) } + fields, data: data)
        }
    }

    // MARK: The corpus

    static let cases: [FramingCase] = {
        var cases: [FramingCase] = []
        let json = Self.json
        let length = "\(json.count)"

        cases.append(FramingCase(name: "control: GET", method: "GET", body: [], http1: (.forwarded, h1("GET")), http2: (.forwarded, h2("GET"))))
        cases.append(
            FramingCase(
                name: "control: POST with Content-Length", method: "POST", body: json,
                http1: (.forwarded, h1("POST", ["Content-Type: application/json", "Content-Length: \(length)"], body: json)),
                http2: (.forwarded, h2("POST", [("content-type", "application/json"), ("content-length", length)], data: [json]))))
        cases.append(
            FramingCase(
                name: "control: POST chunked / DATA without content-length", method: "POST", body: json,
                http1: (.forwarded, h1("POST", ["Transfer-Encoding: chunked"], body: chunked(json))),
                http2: (.forwarded, h2("POST", data: [Array(json[..<5]), Array(json[5...])]))))

        // Connection naming a header: the gateway must not let it remove framing or its own fields.
        cases.append(
            FramingCase(
                name: "Connection: content-length", method: "POST", body: json,
                http1: (.either, h1("POST", ["Connection: content-length", "Content-Length: \(length)"], body: json)),
                http2: (.refused, h2("POST", [("connection", "content-length"), ("content-length", length)], data: [json]))))
        cases.append(
            FramingCase(
                name: "Connection: transfer-encoding", method: "POST", body: json,
                http1: (.either, h1("POST", ["Connection: transfer-encoding", "Transfer-Encoding: chunked"], body: chunked(json))),
                http2: (.refused, h2("POST", [("connection", "transfer-encoding")], data: [json]))))
        for (name, extra) in [("host", [String]()), ("x-ekey-sub", []), ("forwarded", []), ("te", ["TE: trailers"])] {
            cases.append(
                FramingCase(
                    name: "Connection: \(name)", method: "GET", body: [],
                    http1: (.either, h1("GET", ["Connection: \(name)"] + extra)),
                    http2: (.refused, h2("GET", [("connection", name)]))))
        }

        // Content-Length and Transfer-Encoding together or repeated (RFC 9112 §6.3).
        cases.append(
            FramingCase(
                name: "Content-Length with Transfer-Encoding: chunked", method: "POST",
                http1: (.badRequest, h1("POST", ["Content-Length: \(length)", "Transfer-Encoding: chunked"], body: chunked(json))),
                http2: (.refused, h2("POST", [("content-length", length), ("transfer-encoding", "chunked")], data: [json]))))
        cases.append(
            FramingCase(
                name: "duplicate identical Content-Length", method: "POST", body: json,
                http1: (.either, h1("POST", ["Content-Length: \(length)", "Content-Length: \(length)"], body: json)),
                http2: (.either, h2("POST", [("content-length", length), ("content-length", length)], data: [json]))))
        let padded = json + Array(repeating: UInt8(ascii: "x"), count: 32)
        cases.append(
            FramingCase(
                name: "duplicate differing Content-Length", method: "POST",
                http1: (.badRequest, h1("POST", ["Content-Length: \(length)", "Content-Length: \(padded.count)"], body: padded)),
                http2: (.refused, h2("POST", [("content-length", length), ("content-length", "\(padded.count)")], data: [json]))))
        cases.append(
            FramingCase(
                name: "Content-Length: \(length), \(length)", method: "POST", body: json,
                http1: (.either, h1("POST", ["Content-Length: \(length), \(length)"], body: json)),
                http2: (.either, h2("POST", [("content-length", "\(length), \(length)")], data: [json]))))

        // Transfer codings: only `chunked` alone frames a request (RFC 9112 §6.3 rule 4).
        let codings: [(name: String, lines: [String], rule: Rule, http2Value: String)] = [
            ("chunked, identity", ["Transfer-Encoding: chunked, identity"], .badRequest, "chunked, identity"),
            ("gzip", ["Transfer-Encoding: gzip"], .badRequest, "gzip"),
            ("gzip, chunked", ["Transfer-Encoding: gzip, chunked"], .badRequest, "gzip, chunked"),
            ("xchunked", ["Transfer-Encoding: xchunked"], .badRequest, "xchunked"),
            ("Chunked", ["Transfer-Encoding: Chunked"], .either, "Chunked"),
            ("' chunked ' (spaces around)", ["Transfer-Encoding:  chunked  "], .either, "chunked"),
            ("obs-folded chunked", ["Transfer-Encoding:", " chunked"], .badRequest, "chunked"),
        ]
        for (name, lines, rule, http2Value) in codings {
            cases.append(
                FramingCase(
                    name: "Transfer-Encoding: \(name)", method: "POST", body: rule == .either ? json : nil,
                    http1: (rule, h1("POST", lines, body: chunked(json))),
                    http2: (.refused, h2("POST", [("transfer-encoding", http2Value)], data: [json]))))
        }

        // Line endings and control bytes.
        cases.append(FramingCase(name: "bare LF line endings", method: "GET", body: [], http1: (.either, h1("GET", eol: "\n"))))
        cases.append(
            FramingCase(
                name: "bare LF inside a field line, before Content-Length", method: "POST",
                http1: (.either, h1("POST", ["X-Note: a\nContent-Length: \(length)"], body: json))))
        let controls: [(String, String, (String, String))] = [
            ("NUL in a field value", "X-Note: a\u{0}b", ("x-note", "a\u{0}b")),
            ("NUL in a field name", "X-No\u{0}te: a", ("x-no\u{0}te", "a")),
            ("CR in a field value", "X-Note: a\rb", ("x-note", "a\rb")),
            ("CR in a field name", "X-No\rte: a", ("x-no\rte", "a")),
        ]
        for (name, line, field) in controls {
            cases.append(FramingCase(name: name, method: "GET", body: [], http1: (.either, h1("GET", [line])), http2: (.refused, h2("GET", [field]))))
        }

        // Request targets and authorities.
        cases.append(
            FramingCase(
                name: "absolute-form target", method: "GET", body: [],
                http1: (.either, h1("GET", target: "https://api.test/payments")),
                http2: (.either, h2("GET", path: "https://api.test/payments"))))
        cases.append(
            FramingCase(
                name: "Host differs from the authority (absolute form / :authority)", method: "GET", body: [],
                http1: (.either, h1("GET", ["Host: evil.test"], target: "https://api.test/payments", host: false)),
                http2: (.either, h2("GET", [("host", "evil.test")]))))
        cases.append(
            FramingCase(
                name: "path with a space", method: "GET", path: "/payments x", action: "GET:/payments",
                http1: (.refused, h1("GET", target: "/payments x")),
                http2: (.refused, h2("GET", path: "/payments x"))))

        // HTTP/2 specifics (RFC 9113 §8.1.1, §8.2.2, §8.3).
        cases.append(FramingCase(name: "h2 content-length above the DATA length", method: "POST", http2: (.refused, h2("POST", [("content-length", "20")], data: [json]))))
        cases.append(FramingCase(name: "h2 content-length below the DATA length", method: "POST", http2: (.refused, h2("POST", [("content-length", "5")], data: [json]))))
        cases.append(FramingCase(name: "te: trailers", method: "GET", body: [], http1: (.forwarded, h1("GET", ["TE: trailers"])), http2: (.forwarded, h2("GET", [("te", "trailers")]))))
        cases.append(FramingCase(name: "te: gzip", method: "GET", body: [], http1: (.either, h1("GET", ["TE: gzip"])), http2: (.refused, h2("GET", [("te", "gzip")]))))
        cases.append(
            FramingCase(
                name: "duplicate :path", method: "GET",
                http2: (.refused, h2("GET", pseudo: [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/payments"), (":path", "/admin")]))))
        cases.append(FramingCase(name: "upper-case field name over h2", method: "GET", http2: (.refused, h2("GET", [("X-Note", "a")]))))
        cases.append(FramingCase(name: "keep-alive over h2", method: "GET", http2: (.refused, h2("GET", [("keep-alive", "timeout=5")]))))
        cases.append(FramingCase(name: "upgrade over h2", method: "GET", http2: (.refused, h2("GET", [("upgrade", "h2c")]))))

        // Identity and method-override fields sent by the client.
        let injected: [(String, String)] = [
            ("X-EKey-Sub", "attacker"), ("X_EKey_Sub", "attacker"), ("X-EKey_Use", "1/1000000"), ("X-HTTP-Method-Override", "DELETE"),
            ("X-Original-URL", "/admin"),
        ]
        for (name, value) in injected {
            cases.append(
                FramingCase(
                    name: "client \(name): \(value)", method: "GET", body: [],
                    http1: (.either, h1("GET", ["\(name): \(value)"])), http2: (.either, h2("GET", [(name.lowercased(), value)]))))
        }

        // Bodies on methods that seldom have one, holding a complete request.
        let smuggled = Self.smuggled
        cases.append(
            FramingCase(
                name: "GET with a Content-Length body holding a request", method: "GET", body: smuggled,
                http1: (.either, h1("GET", ["Content-Length: \(smuggled.count)"], body: smuggled)),
                http2: (.either, h2("GET", [("content-length", "\(smuggled.count)")], data: [smuggled]))))
        for method in ["GET", "DELETE", "OPTIONS", "PURGE"] {
            cases.append(
                FramingCase(
                    name: "smuggling: \(method) with Connection: content-length (h2: DATA, no content-length)", method: method, body: smuggled,
                    http1: (.either, h1(method, ["Connection: content-length", "Content-Length: \(smuggled.count)"], body: smuggled)),
                    http2: (.either, h2(method, data: [smuggled]))))
        }
        return cases
    }()

    // MARK: Running

    /// Every case over both downstream protocols through one upstream kind. The four kinds
    /// run in parallel, each with its own harness, gateway process and upstream.
    @Test(arguments: UpstreamKind.allCases)
    func corpusKeepsTheBoundary(upstream kind: UpstreamKind) async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let upstream = try kind.make(harness)
        let upstreamPort = try await upstream.start()
        var results: [(label: String, result: CaseResult)] = []
        do {
            results = try await harness.run(upstream: .external(kind.url(port: upstreamPort))) { ports in
                let gateway = try GatewayProcess(harness: harness, publisherPort: ports.publisher, upstream: kind.url(port: upstreamPort))
                try await gateway.start()
                var results: [(label: String, result: CaseResult)] = []
                do {
                    for downstream in Downstream.allCases {
                        let label = "[\(downstream.rawValue) → \(kind.rawValue)]"
                        for testCase in Self.cases {
                            let run = try await gateway.exercise { port in
                                try await Self.run(testCase, downstream: downstream, harness: harness, upstream: upstream, gatewayPort: port)
                            }
                            if let crash = run.earlierCrash, !results.isEmpty {
                                results[results.count - 1].result.violations.append(crash + " (found by the next case)")
                            }
                            guard var result = run.result else { continue }
                            if let crash = run.crash {
                                result.violations.append(crash)
                            }
                            results.append((label, result))
                        }
                    }
                } catch {
                    await gateway.stop()
                    throw error
                }
                await gateway.stop()
                return results
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
        for (label, result) in results {
            let verdict = result.violations.isEmpty ? "ok" : "VIOLATION: " + result.violations.joined(separator: "; ")
            print("FramingCorpus \(label) \(result.name) [\(result.rule.rawValue)]: \(result.outcome) — \(verdict)")
            for violation in result.violations {
                Issue.record("\(label) \(result.name): \(violation)")
            }
        }
        #expect(results.count >= 60, "[\(kind.rawValue)] ran \(results.count) cases")
        let protocols = Set(upstream.connections.compactMap(\.protocolName))
        #expect(protocols == [kind.protocolName], "[\(kind.rawValue)] the upstream was reached over \(protocols)")
    }

    /// Runs one case on a new connection; `nil` when the case has no form for `downstream`.
    static func run(_ testCase: FramingCase, downstream: Downstream, harness: GatewayHarness, upstream: RecordingUpstream, gatewayPort: Int) async throws
        -> CaseResult?
    {
        let key = PrivateSigningKey(generating: .es256)
        let claims = try harness.claims(
            action: testCase.action ?? "\(testCase.method):\(testCase.path)", limit: 5, confirmation: .jwkThumbprint(key.publicKey.jwk.thumbprint))
        let token = try EKeyToken.sign(claims, keyID: harness.keyID, bind: .dpop, using: harness.signingKey)
        let credentials = Credentials(token: token, proof: try harness.proof(key, token: token, method: testCase.method, path: testCase.path))
        let caFile = harness.files.path("ca.crt")
        let mark = upstream.mark()
        let rule: Rule
        let outcome: DownstreamOutcome
        switch downstream {
        case .http1:
            guard let form = testCase.http1 else { return nil }
            rule = form.rule
            outcome = try await HTTP1Downstream.exchange(form.bytes(credentials), port: gatewayPort, caFile: caFile, linger: .milliseconds(20))
        case .http2:
            guard let form = testCase.http2 else { return nil }
            rule = form.rule
            outcome = try await HTTP2Downstream.exchange(form.request(credentials), port: gatewayPort, caFile: caFile)
        }
        await upstream.settle(quiet: .milliseconds(30))
        let verified = Array(
            repeating: BoundaryInvariant.Verified(method: testCase.method, target: testCase.path, claims: claims, body: testCase.body), count: outcome.forwardedCount)
        var violations = BoundaryInvariant.violations(of: upstream, since: mark, verified: verified)
        violations += ruleViolations(rule, outcome)
        return CaseResult(name: testCase.name, rule: rule, outcome: outcome, violations: violations)
    }

    /// What the outcome breaks of the case's rule (the invariant is checked apart).
    static func ruleViolations(_ rule: Rule, _ outcome: DownstreamOutcome) -> [String] {
        var problems: [String] = []
        if let status = outcome.statuses.first(where: { $0 >= 500 }) {
            problems.append("the gateway answered \(status)")
        }
        switch rule {
        case .forwarded:
            if outcome.forwardedCount != 1 { problems.append("a legal request not forwarded: \(outcome)") }
        case .badRequest:
            if outcome.statuses.first != 400 { problems.append("expected 400, got \(outcome)") }
        case .refused:
            if outcome.forwardedCount > 0 { problems.append("forwarded (\(outcome)) where it must be refused") }
        case .either:
            break
        }
        if case .noAnswer = outcome, rule != .forwarded {
            problems.append("no answer within the deadline")
        }
        return problems
    }
}
