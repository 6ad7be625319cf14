import AsyncHTTPClient
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// An HTTP/2 connection over TLS that sends hand-made frames, so a test can break the
/// protocol on purpose; it records what the server sends and when it closes.
final class RawHTTP2Connection: Sendable {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let client: RawTLSClient

    private init(client: RawTLSClient) {
        self.client = client
    }

    /// Connects with TLS and ALPN `h2`; `handshake: false` opens a bare TCP connection that never starts TLS.
    static func open(port: Int, caFile: String, handshake: Bool = true) async throws -> RawHTTP2Connection {
        RawHTTP2Connection(client: try await RawTLSClient.open(port: port, caFile: caFile, alpn: ["h2"], handshake: handshake))
    }

    /// Writes `bytes`; returns `false` once the server has closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) async -> Bool {
        await client.send(bytes)
    }

    var isClosed: Bool { client.isClosed }

    /// Waits up to `timeout` for the server to close the connection.
    func waitClosed(timeout: Duration) async -> Bool {
        await client.wait(timeout: timeout) { _, closed in closed }
    }

    /// The frame types the server sent, in order.
    var receivedFrameTypes: [UInt8] {
        var bytes = client.received[...]
        var types: [UInt8] = []
        while bytes.count >= 9 {
            let length = Int(bytes[bytes.startIndex]) << 16 | Int(bytes[bytes.startIndex + 1]) << 8 | Int(bytes[bytes.startIndex + 2])
            types.append(bytes[bytes.startIndex + 3])
            bytes = bytes.dropFirst(9 + length)
        }
        return types
    }

    /// Whether the server sent GOAWAY.
    var receivedGoAway: Bool { receivedFrameTypes.contains(0x7) }

    /// The DATA the server sent on `stream`, as text.
    func receivedBody(stream: UInt32) -> String {
        var bytes = client.received[...]
        var body: [UInt8] = []
        while bytes.count >= 9 {
            let start = bytes.startIndex
            let length = Int(bytes[start]) << 16 | Int(bytes[start + 1]) << 8 | Int(bytes[start + 2])
            let id = UInt32(bytes[start + 5] & 0x7F) << 24 | UInt32(bytes[start + 6]) << 16 | UInt32(bytes[start + 7]) << 8 | UInt32(bytes[start + 8])
            if bytes[start + 3] == 0x0, id == stream {
                body += bytes.dropFirst(9).prefix(length)
            }
            bytes = bytes.dropFirst(9 + length)
        }
        return String(decoding: body, as: UTF8.self)
    }

    /// Waits up to `timeout` until the server's DATA on `stream` contains `text`.
    func waitForBody(stream: UInt32, containing text: String, timeout: Duration) async -> String {
        let deadline = ContinuousClock.now + timeout
        while !receivedBody(stream: stream).contains(text), !isClosed, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return receivedBody(stream: stream)
    }

    func close() async {
        client.close()
        _ = await client.wait(timeout: .seconds(1)) { _, closed in closed }
    }

    // MARK: Frames

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8], declaredLength: Int? = nil) -> [UInt8] {
        let length = declaredLength ?? payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + withUnsafeBytes(of: (stream & 0x7FFF_FFFF).bigEndian, Array.init) + payload
    }

    static func settings() -> [UInt8] { frame(type: 0x4, flags: 0, stream: 0, payload: []) }

    /// HPACK integer with an `prefixBits`-bit prefix (RFC 7541 §5.1).
    static func hpackInteger(_ value: Int, prefixBits: Int, firstByte: UInt8 = 0) -> [UInt8] {
        let limit = (1 << prefixBits) - 1
        guard value >= limit else { return [firstByte | UInt8(value)] }
        var bytes = [firstByte | UInt8(limit)]
        var rest = value - limit
        while rest >= 128 {
            bytes.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        bytes.append(UInt8(rest))
        return bytes
    }

    /// A header field as a literal without indexing, new name, no Huffman (RFC 7541 §6.2.2).
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00] + hpackInteger(name.utf8.count, prefixBits: 7) + Array(name.utf8) + hpackInteger(value.utf8.count, prefixBits: 7) + Array(value.utf8)
    }

    static func requestBlock(path: String = "/payments", extra: [(String, String)] = []) -> [UInt8] {
        var block = literal(":method", "GET") + literal(":scheme", "https") + literal(":path", path) + literal(":authority", "localhost")
        for (name, value) in extra { block += literal(name, value) }
        return block
    }
}

/// HTTP/2 abuse against the issuer and the gateway running as processes: reset floods,
/// CONTINUATION floods, oversized header blocks, broken frames, many idle connections and
/// connections that never finish TLS. Each process must stay up with bounded memory and
/// keep answering legitimate requests.
@Suite(.serialized)
struct HTTP2AbuseTests {
    /// Publisher, issuer, gateway and the demo legacy API as real processes.
    final class Stack: @unchecked Sendable {
        let harness: GatewayHarness
        let jwksPort: Int
        let issuerPort: Int
        let gatewayPort: Int
        let upstreamPort: Int
        var processes: [String: ServiceProcess] = [:]
        var upstreamTask: Task<Void, Never>?

        init() throws {
            harness = try GatewayHarness()
            jwksPort = try FreePort.pick()
            issuerPort = try FreePort.pick()
            gatewayPort = try FreePort.pick()
            upstreamPort = try FreePort.pick()
        }

        /// The stack file; `connections` (a YAML map) goes into the issuer's and the gateway's sections.
        func config(connections: String) throws -> String {
            let files = harness.files
            let tls = files.absoluteServerTLSYAML
            return try files.write(
                "stack.yaml",
                """
                store: {url: "memory://"}
                jwks:
                  listen: 127.0.0.1:\(jwksPort)
                  admin_listen: 127.0.0.1:\(try FreePort.pick())
                  tls: \(tls)
                  authorized_issuers: ["\(GatewayHarness.issuerID)"]
                issuer:
                  listen: 127.0.0.1:\(issuerPort)
                  admin_listen: 127.0.0.1:\(try FreePort.pick())
                  issuer_url: https://localhost:\(issuerPort)
                  tls: \(tls)
                  connections: \(connections)
                  signing: {alg: ES256}
                  publisher: {url: "https://localhost:\(jwksPort)", ca: \(files.path("ca.crt")), cert: \(files.path("issuer.crt")), key: \(files.path("issuer.key"))}
                  templates:
                    - {name: demo, subjects: ["\(harness.workloadID)"], audiences: ["\(GatewayHarness.audience)"], actions: ["POST:/payments"], max_limit: 5, max_ttl: 30, binds: [DPoP]}
                gateway:
                  listen: 127.0.0.1:\(gatewayPort)
                  admin_listen: 127.0.0.1:\(try FreePort.pick())
                  tls: \(tls)
                  connections: \(connections)
                  issuer: \(GatewayHarness.issuer)
                  jwks: {url: "https://localhost:\(jwksPort)/.well-known/jwks.json", ca: \(files.path("ca.crt"))}
                  routes: [{prefix: /, upstream: "http://127.0.0.1:\(upstreamPort)", audience: "\(GatewayHarness.audience)", public_origin: "\(GatewayHarness.audience)"}]
                """)
        }

        /// Starts the stack; `slowUpstream` puts the test's recording upstream (whose
        /// `/slow` answers after 6 s) in place of `ekey demo-api`; `connections` sets the
        /// issuer's and gateway's `connections` limits (the defaults when empty).
        func start(slowUpstream: Bool = false, connections: String = "{}") async throws {
            let path = try config(connections: connections)
            if slowUpstream {
                let app = UpstreamRecorder.application(recorder: UpstreamRecorder(), port: upstreamPort)
                upstreamTask = Task { try? await app.run() }
            } else {
                processes["api"] = try ServiceProcess("ekey", ["demo-api", "--port", "\(upstreamPort)"])
            }
            processes["jwks"] = try ServiceProcess("ekey-jwks", ["--config", path])
            try await processes["jwks"]!.waitUntilListening(port: jwksPort)
            try await harness.registerSigningKey(publisherPort: jwksPort)
            processes["issuer"] = try ServiceProcess("ekey-issuer", ["--config", path])
            processes["gateway"] = try ServiceProcess("ekey-gateway", ["--config", path])
            try await processes["issuer"]!.waitUntilListening(port: issuerPort)
            try await processes["gateway"]!.waitUntilListening(port: gatewayPort)
            for _ in 0..<100 where !ServiceProcess.canConnect(port: upstreamPort) {
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        func stop() async {
            await harness.clients.shutdownAll()
            for process in processes.values {
                process.signal(SIGTERM)
                _ = try? await process.waitForExit()
            }
            upstreamTask?.cancel()
            harness.files.remove()
        }

        /// Resident memory of a process in MiB.
        func residentMiB(_ name: String) -> Double {
            let status = (try? String(contentsOfFile: "/proc/\(processes[name]!.pid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
        }

        /// A legitimate request: a DPoP call through the gateway (201), or the issuer's metadata (200).
        func legitimateRequestSucceeds(_ target: String) async throws -> Bool {
            let client = try harness.client()
            if target == "gateway" {
                let key = PrivateSigningKey(generating: .es256)
                let token = try harness.dpopToken(key)
                let answer = try await harness.send(
                    client, port: gatewayPort, headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(key, token: token))], body: ByteBuffer(string: "{\"amount\":1}"))
                return answer.status == 201
            }
            let answer = try await harness.send(client, port: issuerPort, .GET, "/.well-known/oauth-authorization-server")
            return answer.status == 200
        }

        func port(_ target: String) -> Int { target == "gateway" ? gatewayPort : issuerPort }
    }

    /// What one abuse did to one process.
    struct Figures: CustomStringConvertible {
        var target: String
        var abuse: String
        var before: Double
        var after: Double
        var closedByServer: Bool
        /// How long the abuse and the checks after it took.
        var took: Duration = .zero
        var description: String {
            String(
                format: "%@ %@: RSS %.1f -> %.1f MiB, connection closed by the server: %@, %.1f s", target, abuse, before, after,
                closedByServer ? "yes" : "no", Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
        }
    }

    static let memoryBoundMiB = 64.0

    func check(_ stack: Stack, _ target: String, _ abuse: String, _ body: () async throws -> Bool) async throws -> Figures {
        let started = ContinuousClock.now
        let before = stack.residentMiB(target)
        let closed = try await body()
        try await Task.sleep(for: .milliseconds(300))
        var figures = Figures(target: target, abuse: abuse, before: before, after: stack.residentMiB(target), closedByServer: closed)
        #expect(stack.processes[target]!.isRunning, "\(target) survives \(abuse)")
        #expect(figures.after - figures.before < Self.memoryBoundMiB, "\(figures)")
        #expect(try await stack.legitimateRequestSucceeds(target), "\(target) still serves legitimate requests after \(abuse)")
        figures.took = ContinuousClock.now - started
        print("HTTP/2 abuse: \(figures)")
        return figures
    }

    /// The handshake limit of the abuse run (`connections.handshake`): the 100 connections
    /// that never start TLS are closed after it. A loopback handshake takes milliseconds, so
    /// 4 s is ample for the legitimate ones on a loaded machine; the default is 10 s.
    static let handshakeLimit: Duration = .seconds(4)

    @Test(arguments: ["gateway", "issuer"])
    func http2AbuseLeavesTheServiceUpBoundedAndServing(target: String) async throws {
        let stack = try Stack()
        do {
            try await stack.start(connections: "{handshake: \(Self.handshakeLimit.components.seconds)s}")
            #expect(try await stack.legitimateRequestSucceeds(target))
            let port = stack.port(target)
            let caFile = stack.harness.files.path("ca.crt")
            typealias Raw = RawHTTP2Connection

            let reset = try await check(stack, target, "reset flood (2,000 HEADERS + RST_STREAM)") {
                let connection = try await Raw.open(port: port, caFile: caFile)
                await connection.send(Raw.preface + Raw.settings())
                var stream: UInt32 = 1
                for _ in 0..<20 {
                    var batch: [UInt8] = []
                    for _ in 0..<100 {
                        batch += Raw.frame(type: 0x1, flags: 0x5, stream: stream, payload: Raw.requestBlock())
                        batch += Raw.frame(type: 0x3, flags: 0, stream: stream, payload: [0, 0, 0, 8])
                        stream += 2
                    }
                    guard await connection.send(batch) else { break }
                }
                let closed = await connection.waitClosed(timeout: .seconds(15))
                await connection.close()
                return closed
            }
            #expect(reset.closedByServer, "a reset flood ends with the server closing the connection")

            let continuation = try await check(stack, target, "CONTINUATION flood (up to 2,000 × 16 KiB, never END_HEADERS)") {
                let connection = try await Raw.open(port: port, caFile: caFile)
                await connection.send(Raw.preface + Raw.settings() + Raw.frame(type: 0x1, flags: 0x1, stream: 1, payload: Raw.requestBlock()))
                let filler = Raw.literal("x-filler", String(repeating: "a", count: 16_000))
                for _ in 0..<2000 {
                    guard await connection.send(Raw.frame(type: 0x9, flags: 0, stream: 1, payload: filler)) else { break }
                }
                let closed = await connection.waitClosed(timeout: .seconds(15))
                await connection.close()
                return closed
            }
            #expect(continuation.closedByServer, "a CONTINUATION flood ends with the server closing the connection")

            _ = try await check(stack, target, "oversized header block (256 KiB in one header list)") {
                let connection = try await Raw.open(port: port, caFile: caFile)
                let block = Raw.requestBlock(extra: (0..<16).map { ("x-big-\($0)", String(repeating: "b", count: 16_000)) })
                var frames = Raw.preface + Raw.settings()
                let chunks = stride(from: 0, to: block.count, by: 16_000).map { Array(block[$0..<min($0 + 16_000, block.count)]) }
                for (index, chunk) in chunks.enumerated() {
                    let last = index == chunks.count - 1
                    frames += Raw.frame(type: index == 0 ? 0x1 : 0x9, flags: (index == 0 ? 0x1 : 0) | (last ? 0x4 : 0), stream: 1, payload: chunk)
                }
                await connection.send(frames)
                let closed = await connection.waitClosed(timeout: .seconds(15))
                let types = connection.receivedFrameTypes
                await connection.close()
                #expect(closed || types.contains(0x3), "the oversized header list is refused (GOAWAY or RST_STREAM), frames: \(types)")
                return closed
            }

            let brokenFrames: [(String, [UInt8])] = [
                ("frame longer than the maximum size", Raw.frame(type: 0x0, flags: 0, stream: 1, payload: [1, 2, 3], declaredLength: 0xFF_FFFF)),
                ("DATA on stream 0", Raw.frame(type: 0x0, flags: 0, stream: 0, payload: [1, 2, 3])),
                ("WINDOW_UPDATE of 0", Raw.frame(type: 0x8, flags: 0, stream: 0, payload: [0, 0, 0, 0])),
                ("SETTINGS of odd length", Raw.frame(type: 0x4, flags: 0, stream: 0, payload: [0, 1, 0])),
                ("HEADERS with an undecodable block", Raw.frame(type: 0x1, flags: 0x5, stream: 1, payload: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])),
                ("HTTP/1.1 text after the preface", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ]
            for (name, frame) in brokenFrames {
                let figures = try await check(stack, target, "broken frame: \(name)") {
                    let connection = try await Raw.open(port: port, caFile: caFile)
                    await connection.send(Raw.preface + Raw.settings() + frame)
                    let closed = await connection.waitClosed(timeout: .seconds(15))
                    await connection.close()
                    return closed
                }
                #expect(figures.closedByServer, "\(target) closes the connection after \(name)")
            }

            var idle: [RawHTTP2Connection] = []
            _ = try await check(stack, target, "300 idle HTTP/2 connections") {
                for _ in 0..<300 {
                    let connection = try await Raw.open(port: port, caFile: caFile)
                    await connection.send(Raw.preface + Raw.settings())
                    idle.append(connection)
                }
                return false
            }
            for connection in idle { await connection.close() }

            var silent: [RawHTTP2Connection] = []
            let stalled = try await check(stack, target, "100 connections that never start TLS") {
                for _ in 0..<100 {
                    silent.append(try await Raw.open(port: port, caFile: caFile, handshake: false))
                }
                let deadline = ContinuousClock.now + Self.handshakeLimit + .seconds(5)
                while silent.contains(where: { !$0.isClosed }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                }
                return silent.allSatisfy(\.isClosed)
            }
            #expect(stalled.closedByServer, "connections that never finish the TLS handshake are closed after \(Self.handshakeLimit)")
            for connection in silent { await connection.close() }
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    /// SIGTERM while a request waits on a slow upstream (6 s): the gateway finishes it over
    /// the same HTTP/2 connection and exits 0 (graceful drain).
    @Test func aGatewayStoppedMidRequestFinishesItAndExitsCleanly() async throws {
        let stack = try Stack()
        do {
            try await stack.start(slowUpstream: true)
            let key = PrivateSigningKey(generating: .es256)
            let token = try stack.harness.dpopToken(key, action: "POST:/slow", limit: 1, lifetime: 60)
            let client = try stack.harness.client()
            let proof = try stack.harness.proof(key, token: token, method: "POST", path: "/slow")
            let harness = stack.harness
            let port = stack.gatewayPort
            let slow = Task {
                try await harness.send(client, port: port, .POST, "/slow", headers: [("authorization", "DPoP \(token)"), ("dpop", proof)], body: ByteBuffer(string: "{}"))
            }
            try await Task.sleep(for: .seconds(1))
            let gateway = stack.processes["gateway"]!
            gateway.signal(SIGTERM)
            let answer = try await slow.value
            #expect(answer.status == 201, "the request in flight at SIGTERM is answered: \(answer.status) \(answer.body)")
            #expect(try await gateway.waitForExit() == 0, "the gateway exits 0 once drained")
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    /// Requests that never reach the checks over HTTP/2, answered in JSON on their stream
    /// while the connection goes on: a header list over the 80 KiB limit (431), a field
    /// value with trailing whitespace, which RFC 9113 §8.2 forbids (400).
    @Test func oversizedAndMalformedHeaderFieldsAreAnsweredInJSON() async throws {
        let stack = try Stack()
        do {
            try await stack.start()
            typealias Raw = RawHTTP2Connection
            let connection = try await Raw.open(port: stack.gatewayPort, caFile: stack.harness.files.path("ca.crt"))
            // 90 KiB of fields in a HEADERS frame and five CONTINUATIONs.
            let block = Raw.requestBlock(extra: (0..<6).map { ("x-big-\($0)", String(repeating: "b", count: 15_000)) })
            let chunks = stride(from: 0, to: block.count, by: 16_000).map { Array(block[$0..<min($0 + 16_000, block.count)]) }
            var frames = Raw.preface + Raw.settings()
            for (index, chunk) in chunks.enumerated() {
                let last = index == chunks.count - 1
                frames += Raw.frame(type: index == 0 ? 0x1 : 0x9, flags: (index == 0 ? 0x1 : 0) | (last ? 0x4 : 0), stream: 1, payload: chunk)
            }
            await connection.send(frames)
            let oversized = await connection.waitForBody(stream: 1, containing: "}", timeout: .seconds(10))
            #expect(oversized.contains(#""error":"invalid_request""#) && oversized.contains("exceed \(ConnectionLimits.maxHeaderListSize) bytes"), "\(oversized)")

            await connection.send(Raw.frame(type: 0x1, flags: 0x5, stream: 3, payload: Raw.requestBlock(extra: [("x-spaced", "value ")])))
            let malformed = await connection.waitForBody(stream: 3, containing: "}", timeout: .seconds(10))
            #expect(malformed.contains(#""error":"invalid_request""#) && malformed.contains("'x-spaced'"), "\(malformed)")
            #expect(!connection.isClosed && !connection.receivedGoAway, "the connection goes on: \(connection.receivedFrameTypes)")
            await connection.close()
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    /// The idle limit of `connections.idle` (60 s by default; 6 s here, set in the stack
    /// file), which the issuer's and publisher's listeners share: an HTTP/2 connection with
    /// no stream is closed with GOAWAY, and a stream whose request never ends (HEADERS
    /// without END_STREAM, then nothing) is reset; when that request was verified and waits
    /// for its first body chunk, its use is given back, since nothing reached the upstream.
    @Test func idleConnectionsAndStalledStreamsEndAfterTheIdleLimit() async throws {
        let limit: Duration = .seconds(6)
        let stack = try Stack()
        do {
            try await stack.start(connections: "{idle: \(limit.components.seconds)s}")
            typealias Raw = RawHTTP2Connection
            let caFile = stack.harness.files.path("ca.crt")
            let started = ContinuousClock.now
            let idle = try await Raw.open(port: stack.gatewayPort, caFile: caFile)
            await idle.send(Raw.preface + Raw.settings())
            let stalled = try await Raw.open(port: stack.gatewayPort, caFile: caFile)
            await stalled.send(Raw.preface + Raw.settings() + Raw.frame(type: 0x1, flags: 0x4, stream: 1, payload: Raw.requestBlock()))
            // A verified GET without Content-Length whose stream stays open with no DATA: the
            // gateway waits for its first body chunk before it contacts the upstream.
            let key = PrivateSigningKey(generating: .es256)
            let token = try stack.harness.dpopToken(key, action: "GET:/", limit: 1, lifetime: 60)
            func authorization() throws -> [(String, String)] {
                [("authorization", "DPoP \(token)"), ("dpop", try stack.harness.proof(key, token: token, method: "GET", path: "/"))]
            }
            let waiting = try await Raw.open(port: stack.gatewayPort, caFile: caFile)
            await waiting.send(
                Raw.preface + Raw.settings() + Raw.frame(type: 0x1, flags: 0x4, stream: 1, payload: Raw.requestBlock(path: "/", extra: try authorization())))

            // The token lives 60 s (+ 5 s skew), so the use given back is checked as soon as
            // the waiting stream is reset, before waiting for the idle connection's close.
            while !waiting.receivedFrameTypes.contains(0x3), ContinuousClock.now < started + limit + .seconds(4) {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(waiting.receivedFrameTypes.contains(0x3), "the verified request whose body never began was reset: \(waiting.receivedFrameTypes)")
            let again = try await stack.harness.send(try stack.harness.client(), port: stack.gatewayPort, .GET, "/", headers: try authorization())
            #expect((200..<300).contains(again.status), "nothing reached the upstream, so the limit-1 token's use was given back: \(again.status) \(again.body)")

            #expect(await idle.waitClosed(timeout: limit + .seconds(15)), "an idle HTTP/2 connection is closed")
            let closedAfter = ContinuousClock.now - started
            #expect(closedAfter >= limit - .seconds(2), "closed by the idle limit, not earlier: after \(closedAfter)")
            #expect(idle.receivedGoAway, "with GOAWAY: \(idle.receivedFrameTypes)")

            let deadline = ContinuousClock.now + .seconds(10)
            while !stalled.receivedFrameTypes.contains(0x3), !stalled.isClosed, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let types = stalled.receivedFrameTypes
            #expect(types.contains(0x1), "the request without a token was answered (401) at once: \(types)")
            #expect(types.contains(0x3) || stalled.isClosed, "the stream whose body never came was reset after the idle limit: \(types)")
            await idle.close()
            await stalled.close()
            await waiting.close()
            #expect(try await stack.legitimateRequestSucceeds("gateway"))
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }
}
