import EKeyStore
import Foundation
import Testing

/// The behaviour every store must show, with identical expectations for memory, a single
/// Redis and a Redis Cluster: each test runs once per back end (``StoreBackend``). What only
/// one back end has is in `MemoryStoreTests`, `RedisStoreTests` and `RedisClusterStoreTests`.
@Suite(.serialized, .redisServers())
struct StoreBehaviourTests {
    @Test(arguments: StoreBackend.allCases)
    func consumeCountsUpToTheLimit(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            for use in 1...3 {
                let outcome = try await s.stores.usage.consume(s.request(trace, limit: 3))
                #expect(outcome == .allowed(used: use, limit: 3))
            }
            let fourth = try await s.stores.usage.consume(s.request(trace, limit: 3))
            #expect(fourth == .limitReached(limit: 3))
            let fromOther = try await s.other.usage.consume(s.request(trace, limit: 3))
            #expect(fromOther == .limitReached(limit: 3), "a second client sees the same counter")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func replayedProofIsRejectedAndNotCounted(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let first = try await s.stores.usage.consume(s.request(trace, jti: "proof-1", limit: 5))
            #expect(first == .allowed(used: 1, limit: 5))
            let replay = try await s.other.usage.consume(s.request(trace, jti: "proof-1", limit: 5))
            #expect(replay == .replayedProof)
            let next = try await s.stores.usage.consume(s.request(trace, jti: "proof-2", limit: 5))
            #expect(next == .allowed(used: 2, limit: 5), "the replay was not counted")
            let otherTrace = try await s.stores.usage.consume(s.request(StoreUnderTest.randomTrace(), jti: "proof-1", limit: 5))
            #expect(otherTrace == .allowed(used: 1, limit: 5), "a jti is remembered per trace")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func replayIsReportedBeforeLimitReached(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            _ = try await s.stores.usage.consume(s.request(trace, jti: "only", limit: 1))
            let replay = try await s.stores.usage.consume(s.request(trace, jti: "only", limit: 1))
            #expect(replay == .replayedProof)
            let spent = try await s.stores.usage.consume(s.request(trace, jti: "fresh", limit: 1))
            #expect(spent == .limitReached(limit: 1))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func firstUseFixesTheLimit(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            _ = try await s.stores.usage.consume(s.request(trace, limit: 1))
            let stretched = try await s.stores.usage.consume(s.request(trace, limit: 5))
            #expect(stretched == .limitReached(limit: 1))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func tokensWithoutProofAreCounted(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let first = try await s.stores.usage.consume(s.request(trace, jti: nil, limit: 2))
            let second = try await s.stores.usage.consume(s.request(trace, jti: nil, limit: 2))
            let third = try await s.stores.usage.consume(s.request(trace, jti: nil, limit: 2))
            #expect([first, second, third] == [.allowed(used: 1, limit: 2), .allowed(used: 2, limit: 2), .limitReached(limit: 2)])
        }
    }

    /// 500 concurrent calls with distinct proofs: exactly `limit` are allowed.
    @Test(arguments: StoreBackend.allCases, [1, 7])
    func concurrentConsumeAllowsExactlyTheLimit(_ backend: StoreBackend, limit: Int) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let outcomes = try await s.concurrently(500) { index in
                try await (index.isMultiple(of: 2) ? s.stores : s.other).usage.consume(s.request(trace, jti: "jti-\(index)", limit: limit))
            }
            let allowed = outcomes.filter { if case .allowed = $0 { true } else { false } }
            #expect(allowed.count == limit)
            #expect(outcomes.filter { $0 == .limitReached(limit: limit) }.count == 500 - limit)
            #expect(Set(allowed) == Set((1...limit).map { ConsumeOutcome.allowed(used: $0, limit: limit) }), "every count handed out once")
        }
    }

    /// 500 concurrent calls with the same proof: one is allowed, the rest are replays.
    @Test(arguments: StoreBackend.allCases)
    func concurrentReplaysAllowOnlyOne(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let outcomes = try await s.concurrently(500) { _ in
                try await s.stores.usage.consume(s.request(trace, jti: "same", limit: 100))
            }
            #expect(outcomes.filter { $0 == .allowed(used: 1, limit: 100) }.count == 1)
            #expect(outcomes.filter { $0 == .replayedProof }.count == 499)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func countersAndProofsExpire(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            // Lifetimes of a second, not less: the store refuses a counter whose expiry has
            // passed by the time the call arrives, and a loaded CI machine once delayed a
            // call past a 150 ms one.
            let lifetime = Duration.seconds(1)
            _ = try await s.stores.usage.consume(s.request(trace, jti: "a", limit: 1, counterLife: lifetime, window: lifetime))
            let spent = try await s.stores.usage.consume(s.request(trace, jti: "b", limit: 1, counterLife: .seconds(60), window: lifetime))
            #expect(spent == .limitReached(limit: 1), "a later request's expiry does not replace the counter's")
            try await s.elapse(.milliseconds(2500))
            let again = try await s.stores.usage.consume(s.request(trace, jti: "a", limit: 1, counterLife: lifetime, window: lifetime))
            #expect(again == .allowed(used: 1, limit: 1), "after the counter's absolute expiry the counter and the jti are gone")

            let proofTrace = StoreUnderTest.randomTrace()
            let long = Duration.seconds(30)
            let short = Duration.seconds(1)
            _ = try await s.stores.usage.consume(s.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
            let replay = try await s.stores.usage.consume(s.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
            #expect(replay == .replayedProof)
            try await s.elapse(.milliseconds(2500))
            let later = try await s.stores.usage.consume(s.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
            #expect(later == .allowed(used: 2, limit: 5), "the jti is forgotten after the proof window, the counter is not")
        }
    }

    /// A counter whose absolute expiry has already passed is never created (it would vanish
    /// at once and its token would start over): the call fails closed and counts nothing.
    @Test(arguments: StoreBackend.allCases)
    func counterExpiryInThePastIsRefused(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let error = await #expect(throws: StoreError.self, "a counter expiring in the past was created") {
                try await s.stores.usage.consume(s.request(trace, jti: "late", limit: 1, counterLife: .seconds(-5)))
            }
            #expect(error?.code == .clockDisagreement)
            #expect(error?.message.contains("clock") == true, "\(error?.message ?? "")")
            let first = try await s.stores.usage.consume(s.request(trace, jti: "late", limit: 1))
            #expect(first == .allowed(used: 1, limit: 1), "the refused call counted nothing and kept no jti")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func refundGivesOneUseBack(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let trace = StoreUnderTest.randomTrace()
            let unknown = try await s.stores.usage.refund(trace: trace)
            #expect(unknown == .unknownTrace)
            _ = try await s.stores.usage.consume(s.request(trace, limit: 1))
            let spent = try await s.stores.usage.consume(s.request(trace, limit: 1))
            #expect(spent == .limitReached(limit: 1))
            let refunded = try await s.stores.usage.refund(trace: trace)
            #expect(refunded == .refunded)
            let atZero = try await s.other.usage.refund(trace: trace)
            #expect(atZero == .nothingUsed, "never below zero")
            let again = try await s.stores.usage.consume(s.request(trace, limit: 1))
            #expect(again == .allowed(used: 1, limit: 1))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func rateLimitAllowsTheCapacityThenLimits(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let identity = "client:\(UUID().uuidString)"
            for index in 0..<5 {
                let store = index.isMultiple(of: 2) ? s.stores.usage : s.other.usage
                let outcome = try await store.takeRateLimitToken(identity: identity, ratePerMinute: 5)
                #expect(outcome == .allowed, "token \(index + 1) of 5")
            }
            let limited = try await s.other.usage.takeRateLimitToken(identity: identity, ratePerMinute: 5)
            guard case .limited(let retryAfter) = limited else {
                Issue.record("the sixth token was \(limited)")
                return
            }
            #expect(retryAfter > .seconds(10), "one token per 12 s")
            #expect(retryAfter <= .seconds(12))
            #expect(limited.retryAfterSeconds == 12)
            let otherIdentity = try await s.stores.usage.takeRateLimitToken(identity: identity + "-2", ratePerMinute: 5)
            #expect(otherIdentity == .allowed, "buckets are per identity")

            // 600 per minute refills one token per 100 ms, also while the burst is being taken.
            let fast = "client:\(UUID().uuidString)"
            let started = ContinuousClock.now
            var allowedCount = 0
            var exhausted = RateLimitOutcome.allowed
            for _ in 0..<700 {
                exhausted = try await s.stores.usage.takeRateLimitToken(identity: fast, ratePerMinute: 600)
                if exhausted != .allowed { break }
                allowedCount += 1
            }
            let refills = Int((ContinuousClock.now - started) / .milliseconds(100)) + 1
            #expect(allowedCount >= 600, "the whole burst is available")
            #expect(allowedCount <= 600 + refills, "no more than the burst plus the refill")
            guard case .limited(let wait) = exhausted else {
                Issue.record("700 tokens in a burst of 600 were allowed")
                return
            }
            #expect(wait <= .milliseconds(100))
            try await s.elapse(wait + .milliseconds(20))
            let refilled = try await s.stores.usage.takeRateLimitToken(identity: fast, ratePerMinute: 600)
            #expect(refilled == .allowed, "refilled after retry-after")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func invalidArgumentsAreRefused(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            for bad in [s.request("", limit: 1), s.request("a{b", limit: 1), s.request(StoreUnderTest.randomTrace(), limit: 0)] {
                let error = await #expect(throws: StoreError.self, "\(bad) was accepted") {
                    try await s.stores.usage.consume(bad)
                }
                #expect(error?.code == .invalidArgument)
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func keyRegistryPutRevokeListImport(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let keys = s.stores.keys
            let key = RegisteredKey(
                kid: "k1", jwk: #"{"crv":"P-256","kty":"EC","x":"a/b","y":"b"}"#, notAfter: nil, registeredAt: 1000, registeredBy: "issuer-a")
            let created = try await keys.put(key)
            #expect(created == .created(key))
            var again = key
            again.registeredAt = 2000
            again.registeredBy = "issuer-b"
            again.notAfter = 5000
            var expected = key
            expected.notAfter = 5000
            let unchanged = try await s.other.keys.put(again)
            #expect(unchanged == .unchanged(expected), "same key: 200, first registration kept, not_after updated")
            var different = key
            different.jwk = #"{"crv":"P-256","kty":"EC","x":"c","y":"d"}"#
            let conflict = try await keys.put(different)
            #expect(conflict == .conflict(existing: expected))
            let second = RegisteredKey(kid: "k0", jwk: #"{"kty":"OKP"}"#, notAfter: 9, registeredAt: 3, registeredBy: "x")
            let createdSecond = try await keys.put(second)
            #expect(createdSecond == .created(second))
            let listed = try await s.other.keys.list()
            #expect(listed == [second, expected])
            let revoked = try await keys.revoke(kid: "k0", at: 100, forgetAfter: 200)
            let revokedAgain = try await s.other.keys.revoke(kid: "k0", at: 150, forgetAfter: 250)
            let unknown = try await keys.revoke(kid: "nothing", at: 100, forgetAfter: 200)
            let tombstone = RevokedKey(kid: "k0", revokedAt: 100, forgetAfter: 200)
            #expect(revoked == .revoked(tombstone))
            #expect(revokedAgain == .alreadyRevoked(tombstone), "a second revocation keeps the first tombstone")
            #expect(unknown == .unknown)
            let remaining = try await keys.list()
            #expect(remaining == [expected])
            let imported = [RegisteredKey(kid: "z", jwk: "{}", notAfter: nil, registeredAt: 1, registeredBy: "admin")]
            let importOutcome = try await keys.importAll(imported, revoked: [])
            #expect(importOutcome == .imported(1))
            let afterImport = try await s.other.keys.list()
            #expect(afterImport == imported)
            let emptied = try await keys.importAll([], revoked: [])
            #expect(emptied == .imported(0))
            let empty = try await keys.list()
            #expect(empty == [])
            let tombstones = try await keys.revokedKeys()
            #expect(tombstones == [tombstone], "an import never drops a tombstone")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func keyRegistryTombstonesRefuseTheKidUntilPurged(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            let keys = s.stores.keys
            let key = RegisteredKey(kid: "k1", jwk: #"{"kty":"OKP","x":"a"}"#, notAfter: nil, registeredAt: 10, registeredBy: "issuer")
            let expiring = RegisteredKey(kid: "k2", jwk: #"{"kty":"OKP","x":"b"}"#, notAfter: 50, registeredAt: 10, registeredBy: "issuer")
            _ = try await keys.put(key)
            _ = try await keys.put(expiring)
            let revocation = try await keys.revoke(kid: "k1", at: 100, forgetAfter: 160)
            let tombstone = RevokedKey(kid: "k1", revokedAt: 100, forgetAfter: 160)
            #expect(revocation == .revoked(tombstone))
            let sameKey = try await s.other.keys.put(key)
            #expect(sameKey == .revoked(tombstone), "the same key is refused")
            var otherKey = key
            otherKey.jwk = #"{"kty":"OKP","x":"c"}"#
            let anotherKey = try await keys.put(otherKey)
            #expect(anotherKey == .revoked(tombstone), "any key is refused under a revoked kid")
            let listed = try await keys.list()
            #expect(listed == [expiring], "a tombstone is not a key")

            // An import holding a revoked kid (stored or imported tombstone) changes nothing.
            let refusedByStored = try await keys.importAll([key], revoked: [])
            #expect(refusedByStored == .revokedKey(tombstone))
            let newer = RevokedKey(kid: "k2", revokedAt: 120, forgetAfter: 180)
            let refusedByImported = try await keys.importAll([expiring], revoked: [newer])
            #expect(refusedByImported == .revokedKey(newer))
            let unchanged = try await s.other.keys.list()
            #expect(unchanged == [expiring])
            let unchangedTombstones = try await keys.revokedKeys()
            #expect(unchangedTombstones == [tombstone])

            // Tombstones merge: of one kid the later forget_after is kept.
            let later = RevokedKey(kid: "k1", revokedAt: 90, forgetAfter: 170)
            let earlier = RevokedKey(kid: "k3", revokedAt: 90, forgetAfter: 95)
            let merged = try await keys.importAll([expiring], revoked: [later, earlier])
            #expect(merged == .imported(1))
            let mergedTombstones = try await keys.revokedKeys()
            #expect(mergedTombstones == [later, earlier])

            // Purge: keys with not_after at or before the first cutoff, tombstones whose
            // forget_after is before the second.
            let nothing = try await keys.purge(keysNotAfterUpTo: 49, tombstonesForgetAfterBefore: 95)
            #expect(nothing == 0)
            let two = try await keys.purge(keysNotAfterUpTo: 50, tombstonesForgetAfterBefore: 170)
            #expect(two == 2, "k2 and the k3 tombstone")
            let leftKeys = try await keys.list()
            #expect(leftKeys == [])
            let leftTombstones = try await keys.revokedKeys()
            #expect(leftTombstones == [later])
            let last = try await keys.purge(keysNotAfterUpTo: 0, tombstonesForgetAfterBefore: 171)
            #expect(last == 1)
            let forgotten = try await keys.put(key)
            #expect(forgotten == .created(key), "a forgotten kid can be registered again")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func pingSucceeds(_ backend: StoreBackend) async throws {
        try await backend.withStores { s in
            try await s.stores.usage.ping()
        }
    }
}
