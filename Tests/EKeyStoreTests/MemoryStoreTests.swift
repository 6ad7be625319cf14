import EKeyStore
import EKeyTestSupport
import Testing

/// What only the memory store has: its bound. (The shared behaviour is in
/// `StoreBehaviourTests`.)
struct MemoryStoreTests {
    @Test func fullStoreRefusesNewEntriesAndKeepsLiveOnes() async throws {
        let s = try StoreUnderTest(.memory, maxEntries: 4)
        let store = try #require(s.memory)
        let clock = try #require(s.clock)
        let first = StoreUnderTest.randomTrace()
        let second = StoreUnderTest.randomTrace()
        let outcomeFirst = try await store.consume(s.request(first, jti: "j1", limit: 5, counterLife: .seconds(20), window: .seconds(5)))
        let outcomeSecond = try await store.consume(s.request(second, jti: "j2", limit: 5, counterLife: .seconds(60), window: .seconds(5)))
        #expect([outcomeFirst, outcomeSecond] == [.allowed(used: 1, limit: 5), .allowed(used: 1, limit: 5)])
        #expect(store.entryCount == 4)

        let full = await #expect(throws: StoreError.self, "a full store accepted a new trace") {
            try await store.consume(s.request(StoreUnderTest.randomTrace(), jti: "j3", limit: 5))
        }
        #expect(full?.code == .capacityExceeded)
        #expect(full?.message.contains("max_entries") == true, "\(full?.message ?? "")")
        let newProof = await #expect(throws: StoreError.self, "a full store accepted a new proof") {
            try await store.consume(s.request(first, jti: "j-new", limit: 5))
        }
        #expect(newProof?.code == .capacityExceeded)
        let replay = try await store.consume(s.request(first, jti: "j1", limit: 5))
        #expect(replay == .replayedProof, "the live jti was not forgotten to make room")
        let noProof = try await store.consume(s.request(first, jti: nil, limit: 5))
        #expect(noProof == .allowed(used: 2, limit: 5), "existing counters still count")

        clock.advance(by: .seconds(6))  // both proofs expired: two entries can be reclaimed
        let afterProofsExpired = try await store.consume(s.request(StoreUnderTest.randomTrace(), jti: "j4", limit: 5))
        #expect(afterProofsExpired == .allowed(used: 1, limit: 5))
        #expect(store.entryCount == 4)

        clock.advance(by: .seconds(15))  // the first counter (expiring at 20 s) expired too
        let rate = try await store.takeRateLimitToken(identity: "client:a", ratePerMinute: 10)
        #expect(rate == .allowed)
        let afterExpiry = try await store.consume(s.request(first, jti: nil, limit: 5))
        #expect(afterExpiry == .allowed(used: 1, limit: 5), "an expired counter starts afresh")
        #expect(store.entryCount == 4)
    }
}
