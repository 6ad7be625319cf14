import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOPosix
import XCTest

/// The shared behaviour on a three-master Redis Cluster, plus MOVED and ASK handling.
final class RedisClusterStoreTests: XCTestCase {
    nonisolated(unsafe) private static var cluster: RedisCluster?
    private var behaviour: StoreBehaviour!
    private var clients: [Stores] = []

    override class func setUp() {
        super.setUp()
        do {
            self.cluster = try RedisCluster()
        } catch {
            XCTFail("cannot start the Redis Cluster: \(error)")
        }
    }

    override class func tearDown() {
        self.cluster?.shutdown()
        self.cluster = nil
        super.tearDown()
    }

    private var cluster: RedisCluster {
        get throws { try XCTUnwrap(Self.cluster, "the Redis Cluster did not start") }
    }

    private func makeStores(prefix: String) throws -> Stores {
        let stores = try Stores.make(
            url: try self.cluster.url, prefix: prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        self.clients.append(stores)
        return stores
    }

    override func setUp() async throws {
        let prefix = "test-\(UUID().uuidString.prefix(8)):"
        let stores = try self.makeStores(prefix: prefix)
        let client = try XCTUnwrap(stores.redisClient)
        self.behaviour = StoreBehaviour(
            stores: stores, other: try self.makeStores(prefix: prefix),
            pttl: { key in try await client.send(RedisCommand("PTTL", key), routingKey: key).int ?? -3 }, prefix: prefix)
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

    // MARK: Cluster only

    func testTTLsAreSet() async throws {
        try await self.behaviour.ttlsAreSet()
    }

    func testTracesSpreadOverEveryMaster() async throws {
        let cluster = try self.cluster
        for _ in 0..<60 {
            _ = try await self.behaviour.stores.usage.consume(self.behaviour.request(StoreBehaviour.randomTrace(), limit: 1))
        }
        for node in cluster.nodes {
            let keys = Int(try node.cli(["DBSIZE"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            XCTAssertGreaterThan(keys, 0, "node \(node.port) holds some of the 60 traces")
        }
    }

    /// The slot moves to another master after the client loaded its slot map: the old
    /// owner answers MOVED, and the client follows it to the counter's new home.
    func testMovedIsFollowed() async throws {
        let cluster = try self.cluster
        let stores = self.behaviour.stores
        let trace = StoreBehaviour.randomTrace()
        let key = "\(self.behaviour.prefix)trace:{\(trace)}"
        let first = try await stores.usage.consume(self.behaviour.request(trace, limit: 5))
        XCTAssertEqual(first, .allowed(used: 1, limit: 5))

        let slot = try cluster.slot(of: key)
        let source = try cluster.owner(ofSlot: slot)
        let target = try XCTUnwrap(cluster.nodes.first { $0.port != source.port })
        try cluster.beginMigration(slot: slot, from: source, to: target)
        try cluster.finishMigration(slot: slot, from: source, to: target)
        XCTAssertEqual(try target.cli(["EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines), "1", "MIGRATE moved the counter")
        XCTAssertTrue(try source.cli(["EXISTS", key]).contains("MOVED"), "the old owner redirects")

        let second = try await stores.usage.consume(self.behaviour.request(trace, limit: 5))
        XCTAssertEqual(second, .allowed(used: 2, limit: 5), "the client followed MOVED to the migrated counter")
        let third = try await self.behaviour.other.usage.consume(self.behaviour.request(trace, limit: 5))
        XCTAssertEqual(third, .allowed(used: 3, limit: 5))

        try cluster.beginMigration(slot: slot, from: target, to: source)
        try cluster.finishMigration(slot: slot, from: target, to: source)
        let back = try await stores.usage.consume(self.behaviour.request(trace, limit: 5))
        XCTAssertEqual(back, .allowed(used: 4, limit: 5))
    }

    /// During a migration the source answers ASK for a key it does not have: the client
    /// sends ASKING and the script to the importing node (loading the script there).
    func testAskIsFollowedDuringMigration() async throws {
        let cluster = try self.cluster
        let stores = self.behaviour.stores
        let warmTrace = StoreBehaviour.randomTrace()
        _ = try await stores.usage.consume(self.behaviour.request(warmTrace, limit: 5))

        let trace = StoreBehaviour.randomTrace()
        let key = "\(self.behaviour.prefix)trace:{\(trace)}"
        let slot = try cluster.slot(of: key)
        let source = try cluster.owner(ofSlot: slot)
        let target = try XCTUnwrap(cluster.nodes.first { $0.port != source.port })
        try target.cli(["SCRIPT", "FLUSH"])
        try cluster.beginMigration(slot: slot, from: source, to: target)
        defer {
            try? cluster.finishMigration(slot: slot, from: source, to: target)
            try? cluster.beginMigration(slot: slot, from: target, to: source)
            try? cluster.finishMigration(slot: slot, from: target, to: source)
        }

        let outcome = try await stores.usage.consume(self.behaviour.request(trace, jti: nil, limit: 2))
        XCTAssertEqual(outcome, .allowed(used: 1, limit: 2))
        XCTAssertEqual(try self.countKeysInSlot(slot, on: target), 1, "the counter was created on the importing node")
        XCTAssertEqual(try self.countKeysInSlot(slot, on: source), 0, "nothing was written on the migrating node")

        // Two new keys of a slot in migration: Redis answers TRYAGAIN until it is done;
        // the client retries, then fails closed.
        do {
            let outcome = try await stores.usage.consume(self.behaviour.request(trace, jti: "j", limit: 2))
            XCTFail("a multi-key script ran during the migration: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .unavailable, "\(error)")
        }
    }

    private func countKeysInSlot(_ slot: Int, on node: RedisServer) throws -> Int {
        Int(try node.cli(["CLUSTER", "COUNTKEYSINSLOT", String(slot)]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
