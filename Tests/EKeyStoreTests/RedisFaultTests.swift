import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOPosix
import XCTest

/// Failures of a single Redis: each test runs its own server.
final class RedisFaultTests: XCTestCase {
    private var servers: [RedisServer] = []
    private var clients: [Stores] = []

    override func tearDown() async throws {
        for stores in self.clients { await stores.shutdown() }
        for server in self.servers { server.shutdown() }
        self.clients = []
        self.servers = []
    }

    private func startServer(_ arguments: [String] = [], password: String? = nil, tls: Bool = false) throws -> RedisServer {
        let server = try RedisServer(arguments: arguments, password: password, tls: tls)
        self.servers.append(server)
        return server
    }

    private func makeStores(_ url: String) throws -> Stores {
        let stores = try Stores.make(url: url, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        self.clients.append(stores)
        return stores
    }

    private func request(_ trace: String, limit: Int = 1000) -> ConsumeRequest {
        ConsumeRequest(
            trace: trace, jti: UUID().uuidString, limit: limit, subject: "s",
            counterExpiresAtMilliseconds: WallClock.epochMilliseconds() + 60_000, proofWindow: .seconds(10))
    }

    /// Stop the server mid-run: every call fails (none is allowed); start it again on the
    /// same port: the same client succeeds again within a few seconds.
    func testStoppedServerFailsClosedAndTheSameClientRecovers() async throws {
        let server = try self.startServer()
        let stores = try self.makeStores("\(server.url)?connect_timeout_ms=500&command_timeout_ms=500")
        let trace = StoreUnderTest.randomTrace()
        let before = try await stores.usage.consume(self.request(trace))
        XCTAssertEqual(before, .allowed(used: 1, limit: 1000))

        server.kill()
        var failures = 0
        let downUntil = ContinuousClock.now + .seconds(1.5)
        while ContinuousClock.now < downUntil {
            do {
                let outcome = try await stores.usage.consume(self.request(trace))
                XCTFail("a call was answered while the server was down: \(outcome)")
            } catch let error as StoreError {
                XCTAssertTrue([.unavailable, .timeout].contains(error.code), "\(error)")
                XCTAssertTrue(error.message.contains("127.0.0.1:\(server.port)"), error.message)
                failures += 1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertGreaterThan(failures, 10)
        do {
            try await stores.usage.ping()
            XCTFail("ping succeeded while the server was down")
        } catch is StoreError {}

        try server.start()
        let restartedAt = ContinuousClock.now
        var recovered: ConsumeOutcome? = nil
        while recovered == nil, ContinuousClock.now - restartedAt < .seconds(5) {
            recovered = try? await stores.usage.consume(self.request(trace))
            if recovered == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        XCTAssertEqual(recovered, .allowed(used: 1, limit: 1000), "a fresh server (no persistence) starts a new counter")
        try await stores.usage.ping()
    }

    /// A server that stops answering (SIGSTOP) trips the command timeout; after SIGCONT
    /// the client works again.
    func testUnresponsiveServerTimesOut() async throws {
        let server = try self.startServer()
        let stores = try self.makeStores("\(server.url)?command_timeout_ms=300&connect_timeout_ms=300")
        _ = try await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))
        server.pause()
        defer { server.resume() }
        let started = ContinuousClock.now
        do {
            let outcome = try await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))
            XCTFail("a paused server answered: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .timeout, "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        server.resume()
        var recovered = false
        for _ in 0..<50 where !recovered {
            recovered = (try? await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))) != nil
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        XCTAssertTrue(recovered)
    }

    func testWrongPasswordNamesTheMaskedURL() async throws {
        let server = try self.startServer(["--requirepass", "right-secret"], password: "right-secret")
        let stores = try self.makeStores("redis://wrong-secret@127.0.0.1:\(server.port)/0")
        do {
            let outcome = try await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))
            XCTFail("a wrong password was accepted: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .authenticationFailed, "\(error)")
            XCTAssertTrue(error.message.contains("redis://***@127.0.0.1:\(server.port)/0"), error.message)
            XCTAssertFalse(error.message.contains("wrong-secret"), "the password is never printed")
        }
        let missing = try self.makeStores("redis://127.0.0.1:\(server.port)")
        do {
            let outcome = try await missing.usage.consume(self.request(StoreUnderTest.randomTrace()))
            XCTFail("no password was accepted: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .authenticationFailed, "\(error)")
        }
        let right = try self.makeStores("redis://right-secret@127.0.0.1:\(server.port)")
        let outcome = try await right.usage.consume(self.request(StoreUnderTest.randomTrace()))
        XCTAssertEqual(outcome, .allowed(used: 1, limit: 1000))
        let withDefaultUser = try self.makeStores("redis://default:right-secret@127.0.0.1:\(server.port)")
        try await withDefaultUser.usage.ping()
    }

    func testACLUserAndPassword() async throws {
        let server = try self.startServer(
            ["--user", "default", "off", "--user", "gateway", "on", ">gate-pass", "~*", "&*", "+@all"])
        let stores = try self.makeStores("redis://gateway:gate-pass@127.0.0.1:\(server.port)/0")
        let outcome = try await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))
        XCTAssertEqual(outcome, .allowed(used: 1, limit: 1000))
        let wrong = try self.makeStores("redis://gateway:nope@127.0.0.1:\(server.port)/0")
        do {
            try await wrong.usage.ping()
            XCTFail("a wrong ACL password was accepted")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .authenticationFailed)
            XCTAssertTrue(error.message.contains("redis://gateway:***@127.0.0.1:\(server.port)/0"), error.message)
        }
    }

    func testTLSWithTheServersCA() async throws {
        let server = try self.startServer(["--requirepass", "tls-secret"], password: "tls-secret", tls: true)
        let ca = try XCTUnwrap(server.caFile)
        let stores = try self.makeStores("rediss://tls-secret@127.0.0.1:\(server.port)/1?ca=\(ca)")
        let outcome = try await stores.usage.consume(self.request(StoreUnderTest.randomTrace()))
        XCTAssertEqual(outcome, .allowed(used: 1, limit: 1000))
        let byName = try self.makeStores("rediss://tls-secret@localhost:\(server.port)?ca=\(ca)")
        try await byName.usage.ping()

        let untrusted = try self.makeStores("rediss://tls-secret@localhost:\(server.port)")
        do {
            try await untrusted.usage.ping()
            XCTFail("a certificate from an unknown CA was accepted")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .unavailable, "\(error)")
        }
        let plaintext = try self.makeStores("redis://tls-secret@127.0.0.1:\(server.port)?command_timeout_ms=500")
        do {
            try await plaintext.usage.ping()
            XCTFail("plaintext was answered by a TLS port")
        } catch is StoreError {}
    }

    func testUnreachableServerIsUnavailable() async throws {
        let port = try RedisServer.freePort()
        let stores = try self.makeStores("redis://user:pw@127.0.0.1:\(port)/2")
        do {
            try await stores.usage.ping()
            XCTFail("nothing listens on \(port)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .unavailable)
            XCTAssertTrue(error.message.contains("redis://user:***@127.0.0.1:\(port)/2"), error.message)
            XCTAssertFalse(error.message.contains(":pw@"))
        }
    }
}
