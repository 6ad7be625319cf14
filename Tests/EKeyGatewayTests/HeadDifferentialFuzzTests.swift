import EKeyProtocol
import EKeyTestSupport
import Foundation
import Testing

/// Differential fuzzing of the HTTP/1.1 request head: valid, verified requests are mutated
/// (field name and value bytes, separators, line endings, duplicated and merged framing
/// fields, whitespace, case, the request line), sent through the gateway over HTTP/1.1 to
/// an `http://` ``RecordingUpstream``, and for every input the gateway's parse (what it
/// verified and answered) is compared with the upstream's independent one through
/// ``BoundaryInvariant``: a request the gateway answered 2xx must reach the upstream as
/// exactly the verified request, and one it did not must not reach it at all.
///
/// `EKEY_FUZZ_ITERATIONS` sets the number of inputs (600 by default), `EKEY_FUZZ_SEED` the
/// seed (decimal or `0x` hex); the seed is printed, and named in every failure. The gateway
/// runs as a ``GatewayProcess``: an input that crashes it is a failure like any other.
@Suite(.serialized)
struct HeadDifferentialFuzzTests {
    static let defaultSeed: UInt64 = 0xE4E7_F022_0001
    static let defaultIterations = 600

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    static var seed: UInt64 {
        guard let text = environment("EKEY_FUZZ_SEED") else { return defaultSeed }
        if text.lowercased().hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) ?? defaultSeed }
        return UInt64(text) ?? defaultSeed
    }

    static var iterations: Int { environment("EKEY_FUZZ_ITERATIONS").flatMap(Int.init) ?? defaultIterations }

    /// One field line of a head, in bytes, with its own separator and line ending.
    struct Line {
        var name: [UInt8]
        var separator: [UInt8] = Array(": ".utf8)
        var value: [UInt8]
        var ending: [UInt8] = [0x0D, 0x0A]
        /// `Authorization` and `DPoP`: left alone by most mutations, so most inputs verify.
        var credential = false

        init(_ name: String, _ value: String, credential: Bool = false) {
            self.name = Array(name.utf8)
            self.value = Array(value.utf8)
            self.credential = credential
        }

        var bytes: [UInt8] { name + separator + value + ending }
    }

    /// A request head and body the mutations work on.
    struct Head {
        var method: String
        var target: String
        var requestLine: [UInt8]
        var lines: [Line]
        var headEnding: [UInt8] = [0x0D, 0x0A]
        var body: [UInt8]
        /// The body's content (`body` without its chunked coding).
        var payload: [UInt8]
        var chunked = false
        /// Whether the body the upstream must get is still `payload` (no framing mutation).
        var bodyKnown = true
        var mutations: [String] = []

        var bytes: [UInt8] { requestLine + lines.flatMap(\.bytes) + headEnding + body }

        /// The bytes with each credential value replaced by `<credential>`, for reports.
        var elided: [UInt8] {
            let shown = lines.map { line in
                var line = line
                if line.credential { line.value = Array("<credential>".utf8) }
                return line
            }
            return requestLine + shown.flatMap(\.bytes) + headEnding + body
        }
    }

    /// One valid call, unmutated and outside the seeded sequence, answered before the inputs
    /// start: the new gateway process fetches its key set and opens its first upstream
    /// connection here. On a loaded machine that first call took over the inputs' 1 s
    /// timeout, and its late arrival upstream was then counted against the next input.
    static func warmUp(_ gateway: GatewayProcess, harness: GatewayHarness, upstream: RecordingUpstream, caFile: String) async throws {
        var generator = SeededGenerator(seed: 1)
        let key = PrivateSigningKey(generating: .es256)
        let claims = try harness.claims(action: "GET:/payments/42", limit: 5, confirmation: .jwkThumbprint(key.publicKey.jwk.thumbprint))
        let token = try EKeyToken.sign(claims, keyID: harness.keyID, bind: .dpop, using: harness.signingKey)
        let proof = try harness.proof(key, token: token, method: "GET", path: "/payments/42")
        let head = base(method: "GET", path: "/payments/42", credentials: [("Authorization", "DPoP \(token)"), ("DPoP", proof)], using: &generator)
        let (outcome, _, _) = try await gateway.exercise { port in
            try await HTTP1Downstream.exchange(head.bytes, port: port, caFile: caFile, timeout: .seconds(30), linger: .milliseconds(20))
        }
        await upstream.settle(quiet: .milliseconds(200))
        #expect(outcome.forwardedCount == 1, "the warm-up call reaches the upstream: \(outcome)")
    }

    static let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    static let paths = ["/payments", "/payments/42", "/orders/7/items"]
    static let interestingBytes: [UInt8] = [0x00, 0x0D, 0x0A, 0x09, 0x20, 0x2C, 0x3B, 0x3A, 0x22, 0x5F, 0x2D, 0x7F, 0x80, 0xFF, 0x30, 0x61, 0x41]
    static let connectionOptions = ["content-length", "transfer-encoding", "host", "x-ekey-sub", "forwarded", "te", "keep-alive", "close", "upgrade", "x-request-id", "dpop"]

    /// A valid request for `method path` with the given credentials.
    static func base(method: String, path: String, credentials: [(String, String)], using generator: inout SeededGenerator) -> Head {
        var lines = [Line("Host", "localhost")]
        lines += credentials.map { Line($0.0, $0.1, credential: true) }
        lines += [Line("User-Agent", "fuzz/1"), Line("Accept", "*/*"), Line("X-Request-Id", "\(generator.next() % 100_000)")]
        var payload: [UInt8] = []
        var chunked = false
        if ["POST", "PUT", "PATCH"].contains(method) || generator.next() % 4 == 0 {
            payload = Array("{\"amount\":\(generator.next() % 1000)}".utf8)
            lines.append(Line("Content-Type", "application/json"))
            chunked = generator.next() % 3 == 0
            lines.append(chunked ? Line("Transfer-Encoding", "chunked") : Line("Content-Length", "\(payload.count)"))
        }
        lines.shuffle(using: &generator)
        return Head(
            method: method, target: path, requestLine: Array("\(method) \(path) HTTP/1.1\r\n".utf8), lines: lines,
            body: chunked ? FramingCorpusTests.chunked(payload) : payload, payload: payload, chunked: chunked)
    }

    /// Applies one random mutation.
    static func mutate(_ head: inout Head, using generator: inout SeededGenerator) {
        func pick(_ count: Int) -> Int { Int(generator.next() % UInt64(max(count, 1))) }
        func line(credentials: Bool = false) -> Int? {
            let candidates = head.lines.indices.filter { credentials || !head.lines[$0].credential }
            return candidates.isEmpty ? nil : candidates[pick(candidates.count)]
        }
        func byte() -> UInt8 { interestingBytes[pick(interestingBytes.count)] }
        switch pick(13) {
        case 0:
            guard let index = line(credentials: pick(10) == 0), !head.lines[index].name.isEmpty else { return }
            let position = pick(head.lines[index].name.count)
            let old = head.lines[index].name[position]
            let new = pick(3) == 0 ? (old ^ 0x20) : byte()
            if pick(2) == 0 { head.lines[index].name[position] = new } else { head.lines[index].name.insert(new, at: position) }
            head.mutations.append("name byte \(position) of line \(index): \(StrictHTTP1Parser.quoted(head.lines[index].name))")
            head.bodyKnown = false
        case 1:
            guard let index = line(credentials: pick(10) == 0) else { return }
            let position = pick(head.lines[index].value.count + 1)
            head.lines[index].value.insert(byte(), at: position)
            head.mutations.append("value byte \(position) of line \(index): \(StrictHTTP1Parser.quoted(head.lines[index].value))")
            head.bodyKnown = false
        case 2:
            guard let index = line() else { return }
            let separators = [":", ": ", ":\t", " :", ":  ", "\t:", "::", ": \t "]
            head.lines[index].separator = Array(separators[pick(separators.count)].utf8)
            head.mutations.append("separator of line \(index): \(StrictHTTP1Parser.quoted(head.lines[index].separator))")
            head.bodyKnown = false
        case 3:
            let endings = ["\n", "\r", "\r\r\n", "\n\r", " \r\n", "\r\n\r\n", "\r\n "]
            let ending = Array(endings[pick(endings.count)].utf8)
            let index = pick(head.lines.count + 2)
            if index < head.lines.count {
                head.lines[index].ending = ending
            } else if index == head.lines.count {
                head.headEnding = ending
            } else {
                head.requestLine = Array(head.requestLine.dropLast(2)) + ending
            }
            head.mutations.append("line ending \(index): \(StrictHTTP1Parser.quoted(ending))")
            head.bodyKnown = false
        case 4, 5:
            let length = head.body.count
            let framing: [(String, String)] = [
                ("Content-Length", "\(length)"), ("Content-Length", "\(length + 5)"), ("Content-Length", "\(max(0, length - 3))"),
                ("Content-Length", "\(length), \(length)"), ("Content-Length", "+\(length)"), ("Content-Length", "0\(length)"),
                ("Content-Length", " \(length) "), ("Content-Length", "0x\(String(length, radix: 16))"), ("Content-Length", "-1"),
                ("Content-Length", "0"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "Chunked"),
                ("Transfer-Encoding", "chunked, chunked"), ("Transfer-Encoding", "gzip, chunked"), ("Transfer-Encoding", "identity"),
                ("Transfer-Encoding", " chunked"), ("Transfer-Encoding", "chunked;q=1"), ("transfer-encoding", "chunked\t"),
                ("TE", "trailers"), ("Upgrade", "h2c"),
                ("Expect", "100-continue"), ("Content_Length", "\(length)"), ("Transfer_Encoding", "chunked"),
            ]
            let (name, value) = framing[pick(framing.count)]
            head.lines.insert(Line(name, value), at: pick(head.lines.count + 1))
            if !head.chunked, value.lowercased().contains("chunked"), pick(2) == 0 {
                head.body = FramingCorpusTests.chunked(head.payload)
                head.chunked = true
            }
            head.mutations.append("added \(name): \(value)")
            head.bodyKnown = false
        case 6:
            guard let index = line() else { return }
            head.lines.insert(head.lines[index], at: pick(head.lines.count + 1))
            head.mutations.append("duplicated line \(index)")
            head.bodyKnown = false
        case 7:
            guard let first = line(), let second = line(), first != second else { return }
            head.lines[first].value += Array(", ".utf8) + head.lines[second].value
            head.mutations.append("merged line \(second) into \(first)")
            head.bodyKnown = false
        case 8:
            guard let index = line(), head.lines[index].value.count > 1 else { return }
            let split = 1 + pick(head.lines[index].value.count - 1)
            head.lines[index].value.insert(contentsOf: pick(2) == 0 ? [0x0D, 0x0A, 0x20] : [0x0D, 0x0A, 0x09], at: split)
            head.mutations.append("obs-fold in line \(index) at \(split)")
            head.bodyKnown = false
        case 9:
            guard let index = line() else { return }
            let blanks: [[UInt8]] = [[0x20], [0x09], [0x20, 0x20], [0x0B], [0x0C]]
            let blank = blanks[pick(blanks.count)]
            switch pick(3) {
            case 0: head.lines[index].name = blank + head.lines[index].name
            case 1: head.lines[index].value += blank
            default: head.lines[index].name += blank
            }
            head.mutations.append("whitespace in line \(index): \(StrictHTTP1Parser.quoted(head.lines[index].bytes))")
            head.bodyKnown = false
        case 10:
            guard let index = line(credentials: true) else { return }
            let name = String(decoding: head.lines[index].name, as: UTF8.self)
            let cased = pick(2) == 0 ? name.uppercased() : String(name.enumerated().map { pick(2) == 0 ? Character($0.element.uppercased()) : Character($0.element.lowercased()) })
            head.lines[index].name = Array(cased.utf8)
            head.mutations.append("case of line \(index): \(cased)")
        case 11:
            let options = (0...pick(2)).map { _ in connectionOptions[pick(connectionOptions.count)] }
            let value = (pick(3) == 0 ? ["keep-alive"] : []) + options
            head.lines.insert(Line(pick(5) == 0 ? "connection" : "Connection", value.joined(separator: pick(2) == 0 ? ", " : ",")), at: pick(head.lines.count + 1))
            head.mutations.append("Connection: \(value)")
        default:
            let lines = [
                "\(head.method.lowercased()) \(head.target) HTTP/1.1\r\n", "\(head.method)  \(head.target) HTTP/1.1\r\n",
                "\(head.method)\t\(head.target) HTTP/1.1\r\n", "\(head.method) \(head.target) HTTP/1.0\r\n",
                "\(head.method) \(head.target) http/1.1\r\n", "\(head.method) \(head.target) HTTP/1.1 \r\n",
                "\(head.method) \(head.target)?a=b HTTP/1.1\r\n", "\(head.method) \(head.target)#frag HTTP/1.1\r\n",
                "\(head.method) https://api.test\(head.target) HTTP/1.1\r\n", "\r\n\(head.method) \(head.target) HTTP/1.1\r\n",
            ]
            let choice = pick(lines.count)
            head.requestLine = Array(lines[choice].utf8)
            if choice == 6 { head.target += "?a=b" }
            head.mutations.append("request line \(StrictHTTP1Parser.quoted(head.requestLine))")
        }
    }

    @Test func mutatedHeadsReachTheUpstreamExactlyAsVerifiedOrNotAtAll() async throws {
        let seed = Self.seed
        let iterations = Self.iterations
        let rerun = "EKEY_FUZZ_SEED=0x\(String(seed, radix: 16)) EKEY_FUZZ_ITERATIONS=\(iterations)"
        print("HeadDifferentialFuzz: \(iterations) inputs, seed 0x\(String(seed, radix: 16)) (rerun: \(rerun))")
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let upstream = try RecordingUpstream(mode: .http1)
        let upstreamPort = try await upstream.start()
        let caFile = harness.files.path("ca.crt")
        var generator = SeededGenerator(seed: seed)
        var tally: [String: Int] = [:]
        var failures = 0
        do {
            try await harness.run(upstream: .external("http://127.0.0.1:\(upstreamPort)")) { ports in
                let gateway = try GatewayProcess(harness: harness, publisherPort: ports.publisher, upstream: "http://127.0.0.1:\(upstreamPort)")
                try await gateway.start()
                try await Self.warmUp(gateway, harness: harness, upstream: upstream, caFile: caFile)
                var previousInput = ""
                func report(_ input: String, _ problems: [String]) {
                    failures += 1
                    if failures <= 25 {
                        Issue.record("\(problems.joined(separator: "; "))\n\(input)")
                    }
                }
                for iteration in 0..<iterations {
                    let method = Self.methods[Int(generator.next() % UInt64(Self.methods.count))]
                    let path = Self.paths[Int(generator.next() % UInt64(Self.paths.count))]
                    let key = PrivateSigningKey(generating: .es256)
                    let claims = try harness.claims(action: "\(method):\(path)", limit: 5, confirmation: .jwkThumbprint(key.publicKey.jwk.thumbprint))
                    let token = try EKeyToken.sign(claims, keyID: harness.keyID, bind: .dpop, using: harness.signingKey)
                    let proof = try harness.proof(key, token: token, method: method, path: path)
                    var head = Self.base(method: method, path: path, credentials: [("Authorization", "DPoP \(token)"), ("DPoP", proof)], using: &generator)
                    for _ in 0..<(1 + Int(generator.next() % 3)) {
                        Self.mutate(&head, using: &generator)
                    }
                    let run = try await gateway.exercise { port in
                        let mark = upstream.mark()
                        let outcome = try await HTTP1Downstream.exchange(head.bytes, port: port, caFile: caFile, timeout: .seconds(1), linger: .milliseconds(20))
                        await upstream.settle(quiet: .milliseconds(30))
                        let expectedTarget = head.target.hasPrefix("/") ? head.target : path
                        let verified = Array(
                            repeating: BoundaryInvariant.Verified(method: method, target: expectedTarget, claims: claims, body: head.bodyKnown ? head.payload : nil),
                            count: outcome.forwardedCount)
                        var problems = BoundaryInvariant.violations(of: upstream, since: mark, verified: verified)
                        if let status = outcome.statuses.first(where: { $0 >= 500 }) {
                            problems.append("the gateway answered \(status)")
                        }
                        return (outcome: outcome, problems: problems)
                    }
                    let input = """
                        input \(iteration) (\(rerun))
                          mutations: \(head.mutations.joined(separator: " | "))
                          outcome: \(run.result.outcome)
                          bytes (credential values elided): \(StrictHTTP1Parser.quoted(head.elided, limit: 4000))
                        """
                    if let crash = run.earlierCrash {
                        report(previousInput, [crash + " (found by the next input)"])
                    }
                    let problems = run.result.problems + (run.crash.map { [$0] } ?? [])
                    tally[run.result.outcome.forwardedCount > 0 ? "forwarded" : "\(run.result.outcome)", default: 0] += 1
                    if !problems.isEmpty {
                        report(input, problems)
                    }
                    previousInput = input
                }
                await gateway.stop()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
        let summary = tally.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("HeadDifferentialFuzz: seed 0x\(String(seed, radix: 16)), \(iterations) inputs, \(failures) broke the invariant; outcomes: \(summary)")
        #expect(failures == 0, "\(failures) of \(iterations) inputs broke the invariant (\(rerun))")
        #expect((tally["forwarded"] ?? 0) > iterations / 20, "enough inputs verify and reach the upstream to exercise it: \(summary)")
    }
}
