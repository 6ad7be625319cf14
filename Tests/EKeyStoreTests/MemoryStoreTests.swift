import EKeyStore
import Logging
import NIOPosix
import Synchronization
import XCTest

/// The shared behaviour on `memory://`, and the memory store's bound.
final class MemoryStoreTests: XCTestCase {
    private var behaviour: StoreBehaviour!

    override func setUp() async throws {
        let stores = try Stores.make(url: "memory://", eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        self.behaviour = StoreBehaviour(stores: stores, other: stores, pttl: nil, prefix: "ekey:")
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

    // MARK: Bound

    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        private let offset = Mutex(Duration.zero)
        private let start = ContinuousClock.now
        func advance(_ duration: Duration) { self.offset.withLock { $0 += duration } }
        var now: ContinuousClock.Instant { self.start + self.offset.withLock { $0 } }
    }

    func testFullStoreRefusesNewEntriesAndKeepsLiveOnes() async throws {
        let clock = ManualClock()
        let store = MemoryStore(maxEntries: 4, now: { clock.now })
        let behaviour = StoreBehaviour(stores: Stores(usage: store, keys: store, redisClient: nil), other: Stores(usage: store, keys: store, redisClient: nil), pttl: nil, prefix: "")
        let first = StoreBehaviour.randomTrace()
        let second = StoreBehaviour.randomTrace()
        let outcomeFirst = try await store.consume(behaviour.request(first, jti: "j1", limit: 5, counterLife: .seconds(20), window: .seconds(5)))
        let outcomeSecond = try await store.consume(behaviour.request(second, jti: "j2", limit: 5, counterLife: .seconds(60), window: .seconds(5)))
        XCTAssertEqual([outcomeFirst, outcomeSecond], [.allowed(used: 1, limit: 5), .allowed(used: 1, limit: 5)])
        XCTAssertEqual(store.entryCount, 4)

        do {
            let outcome = try await store.consume(behaviour.request(StoreBehaviour.randomTrace(), jti: "j3", limit: 5))
            XCTFail("a full store accepted a new trace: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .capacityExceeded)
            XCTAssertTrue(error.message.contains("max_entries"), error.message)
        }
        do {
            let outcome = try await store.consume(behaviour.request(first, jti: "j-new", limit: 5))
            XCTFail("a full store accepted a new proof: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .capacityExceeded)
        }
        let replay = try await store.consume(behaviour.request(first, jti: "j1", limit: 5))
        XCTAssertEqual(replay, .replayedProof, "the live jti was not forgotten to make room")
        let noProof = try await store.consume(behaviour.request(first, jti: nil, limit: 5))
        XCTAssertEqual(noProof, .allowed(used: 2, limit: 5), "existing counters still count")

        clock.advance(.seconds(6))  // both proofs expired: two entries can be reclaimed
        let afterProofsExpired = try await store.consume(behaviour.request(StoreBehaviour.randomTrace(), jti: "j4", limit: 5))
        XCTAssertEqual(afterProofsExpired, .allowed(used: 1, limit: 5))
        XCTAssertEqual(store.entryCount, 4)

        clock.advance(.seconds(15))  // the first counter (expiring at 20 s) expired too
        let rate = try await store.takeRateLimitToken(identity: "client:a", ratePerMinute: 10)
        XCTAssertEqual(rate, .allowed)
        let afterExpiry = try await store.consume(behaviour.request(first, jti: nil, limit: 5))
        XCTAssertEqual(afterExpiry, .allowed(used: 1, limit: 5), "an expired counter starts afresh")
        XCTAssertEqual(store.entryCount, 4)
    }
}
