import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOPosix
import XCTest

/// The shared behaviour on one `redis-server`, plus what only Redis has (TTLs, scripts,
/// databases).
final class RedisStoreTests: XCTestCase {
    nonisolated(unsafe) private static var server: RedisServer?
    private var behaviour: StoreBehaviour!
    private var clients: [Stores] = []

    override class func setUp() {
        super.setUp()
        do {
            self.server = try RedisServer()
        } catch {
            XCTFail("cannot start redis-server: \(error)")
        }
    }

    override class func tearDown() {
        self.server?.shutdown()
        self.server = nil
        super.tearDown()
    }

    private var server: RedisServer {
        get throws { try XCTUnwrap(Self.server, "redis-server did not start") }
    }

    private func makeStores(_ url: String, prefix: String) throws -> Stores {
        let stores = try Stores.make(url: url, prefix: prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        self.clients.append(stores)
        return stores
    }

    override func setUp() async throws {
        let prefix = "test-\(UUID().uuidString.prefix(8)):"
        let url = try self.server.url
        let stores = try self.makeStores(url, prefix: prefix)
        let client = try XCTUnwrap(stores.redisClient)
        self.behaviour = StoreBehaviour(
            stores: stores, other: try self.makeStores(url, prefix: prefix),
            pttl: { key in try await client.send(RedisCommand("PTTL", key)).int ?? -3 }, prefix: prefix)
    }

    override func tearDown() async throws {
        for stores in self.clients { await stores.shutdown() }
        self.clients = []
    }

    // MARK: The shared behaviour (StoreBehaviour)

    func testConsumeCountsUpToTheLimit() async throws { try await self.behaviour.consumeCountsUpToTheLimit() }
    func testReplayedProofIsRejectedAndNotCounted() async throws { try await self.behaviour.replayedProofIsRejectedAndNotCounted() }
    func testReplayIsReportedBeforeLimitReached() async throws { try await self.behaviour.replayIsReportedBeforeLimitReached() }
    func testFirstUseFixesTheLimit() async throws { try await self.behaviour.firstUseFixesTheLimit() }
    func testTokensWithoutProofAreCounted() async throws { try await self.behaviour.tokensWithoutProofAreCounted() }
    func testConcurrentConsumeWithLimitOneAllowsOne() async throws { try await self.behaviour.concurrentConsumeAllowsExactlyTheLimit(1) }
    func testConcurrentConsumeWithLimitSevenAllowsSeven() async throws { try await self.behaviour.concurrentConsumeAllowsExactlyTheLimit(7) }
    func testConcurrentReplaysAllowOnlyOne() async throws { try await self.behaviour.concurrentReplaysAllowOnlyOne() }
    func testCountersAndProofsExpire() async throws { try await self.behaviour.countersAndProofsExpire() }
    func testCounterExpiryInThePastIsRefused() async throws { try await self.behaviour.counterExpiryInThePastIsRefused() }
    func testRefundGivesOneUseBack() async throws { try await self.behaviour.refundGivesOneUseBack() }
    func testRateLimitAllowsTheCapacityThenLimits() async throws { try await self.behaviour.rateLimitAllowsTheCapacityThenLimits() }
    func testInvalidArgumentsAreRefused() async throws { try await self.behaviour.invalidArgumentsAreRefused() }
    func testKeyRegistryPutRevokeListImport() async throws { try await self.behaviour.keyRegistryPutRevokeListImport() }
    func testKeyRegistryTombstonesRefuseTheKidUntilPurged() async throws { try await self.behaviour.keyRegistryTombstonesRefuseTheKidUntilPurged() }
    func testPingSucceeds() async throws { try await self.behaviour.pingSucceeds() }

    // MARK: Redis only

    func testTTLsAreSet() async throws {
        try await self.behaviour.ttlsAreSet()
    }

    func testEmbeddedScriptDigestsMatchTheServers() async throws {
        let client = try XCTUnwrap(self.behaviour.stores.redisClient)
        for script in [
            RedisScripts.consume, RedisScripts.refund, RedisScripts.rateLimit, RedisScripts.keyRegistryPut, RedisScripts.keyRegistryImport,
            RedisScripts.keyRegistryRevoke, RedisScripts.keyRegistryPurge,
        ] {
            XCTAssertTrue(script.source.contains("KEYS[1]"), "\(script.name) is embedded")
            let loaded = try await client.send(RedisCommand("SCRIPT", "LOAD", script.source))
            XCTAssertEqual(loaded.string, script.sha1, script.name)
        }
    }

    func testScriptFlushIsHealedByLoadingAgain() async throws {
        let client = try XCTUnwrap(self.behaviour.stores.redisClient)
        let trace = StoreBehaviour.randomTrace()
        let first = try await self.behaviour.stores.usage.consume(self.behaviour.request(trace, limit: 3))
        XCTAssertEqual(first, .allowed(used: 1, limit: 3))
        let flushed = try await client.send(RedisCommand("SCRIPT", "FLUSH"))
        XCTAssertEqual(flushed, .simpleString("OK"))
        let exists = try await client.send(RedisCommand("SCRIPT", "EXISTS", RedisScripts.consume.sha1))
        XCTAssertEqual(exists, .array([.integer(0)]))
        let second = try await self.behaviour.stores.usage.consume(self.behaviour.request(trace, limit: 3))
        XCTAssertEqual(second, .allowed(used: 2, limit: 3), "NOSCRIPT was answered with SCRIPT LOAD and a retry")
    }

    func testSelectedDatabaseHoldsTheKeys() async throws {
        let server = try self.server
        let prefix = "db-\(UUID().uuidString.prefix(8)):"
        let stores = try self.makeStores("\(server.url)/3", prefix: prefix)
        let trace = StoreBehaviour.randomTrace()
        _ = try await stores.usage.consume(self.behaviour.request(trace, limit: 1))
        let key = "\(prefix)trace:{\(trace)}"
        XCTAssertEqual(try server.cli(["-n", "3", "EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines), "1")
        XCTAssertEqual(try server.cli(["-n", "0", "EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines), "0")
        XCTAssertEqual(try server.cli(["-n", "3", "HGET", key, "sub"]).trimmingCharacters(in: .whitespacesAndNewlines), "spiffe://example.org/test")
    }

    func testPipelinedCommandsGetTheirOwnReplies() async throws {
        let client = try XCTUnwrap(self.behaviour.stores.redisClient)
        let replies = try await withThrowingTaskGroup(of: (Int, RedisValue).self) { group in
            for index in 0..<2000 {
                group.addTask { (index, try await client.send(RedisCommand("ECHO", "value-\(index)"))) }
            }
            var replies: [Int: RedisValue] = [:]
            for try await (index, reply) in group { replies[index] = reply }
            return replies
        }
        XCTAssertEqual(replies.count, 2000)
        for (index, reply) in replies where reply.string != "value-\(index)" {
            return XCTFail("command \(index) got \(reply)")
        }
        let big = String(repeating: "x", count: 300_000)
        let echoed = try await client.send(RedisCommand("ECHO", big))
        XCTAssertEqual(echoed.string, big, "a reply spanning many reads")
    }
}
