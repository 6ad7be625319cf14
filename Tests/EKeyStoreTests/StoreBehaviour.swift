import EKeyStore
import Foundation
import XCTest

/// The behaviour every store must show, with identical expectations for memory, a single
/// Redis and a Redis Cluster. Each back end's test class calls every check
/// (`MemoryStoreTests`, `RedisStoreTests`, `RedisClusterStoreTests`).
struct StoreBehaviour: Sendable {
    /// The store under test.
    let stores: Stores
    /// A second client of the same back end (the same instance for memory).
    let other: Stores
    /// Reads a key's PTTL in ms through the Redis client; `nil` for memory.
    let pttl: (@Sendable (String) async throws -> Int)?
    let prefix: String

    static func randomTrace() -> String {
        (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    func request(
        _ trace: String, jti: String? = UUID().uuidString, limit: Int, counterLife: Duration = .seconds(60),
        window: Duration = .seconds(10)
    ) -> ConsumeRequest {
        let (seconds, attoseconds) = counterLife.components
        return ConsumeRequest(
            trace: trace, jti: jti, limit: limit, subject: "spiffe://example.org/test",
            counterExpiresAtMilliseconds: WallClock.epochMilliseconds() + seconds * 1000 + attoseconds / 1_000_000_000_000_000,
            proofWindow: window, expiresAt: Int64(Date().timeIntervalSince1970) + 30)
    }

    func consumeCountsUpToTheLimit() async throws {
        let trace = Self.randomTrace()
        for use in 1...3 {
            let outcome = try await self.stores.usage.consume(self.request(trace, limit: 3))
            XCTAssertEqual(outcome, .allowed(used: use, limit: 3))
        }
        let fourth = try await self.stores.usage.consume(self.request(trace, limit: 3))
        XCTAssertEqual(fourth, .limitReached(limit: 3))
        let fromOther = try await self.other.usage.consume(self.request(trace, limit: 3))
        XCTAssertEqual(fromOther, .limitReached(limit: 3), "a second client sees the same counter")
    }

    func replayedProofIsRejectedAndNotCounted() async throws {
        let trace = Self.randomTrace()
        let first = try await self.stores.usage.consume(self.request(trace, jti: "proof-1", limit: 5))
        XCTAssertEqual(first, .allowed(used: 1, limit: 5))
        let replay = try await self.other.usage.consume(self.request(trace, jti: "proof-1", limit: 5))
        XCTAssertEqual(replay, .replayedProof)
        let next = try await self.stores.usage.consume(self.request(trace, jti: "proof-2", limit: 5))
        XCTAssertEqual(next, .allowed(used: 2, limit: 5), "the replay was not counted")
        let otherTrace = try await self.stores.usage.consume(self.request(Self.randomTrace(), jti: "proof-1", limit: 5))
        XCTAssertEqual(otherTrace, .allowed(used: 1, limit: 5), "a jti is remembered per trace")
    }

    func replayIsReportedBeforeLimitReached() async throws {
        let trace = Self.randomTrace()
        _ = try await self.stores.usage.consume(self.request(trace, jti: "only", limit: 1))
        let replay = try await self.stores.usage.consume(self.request(trace, jti: "only", limit: 1))
        XCTAssertEqual(replay, .replayedProof)
        let spent = try await self.stores.usage.consume(self.request(trace, jti: "fresh", limit: 1))
        XCTAssertEqual(spent, .limitReached(limit: 1))
    }

    func firstUseFixesTheLimit() async throws {
        let trace = Self.randomTrace()
        _ = try await self.stores.usage.consume(self.request(trace, limit: 1))
        let stretched = try await self.stores.usage.consume(self.request(trace, limit: 5))
        XCTAssertEqual(stretched, .limitReached(limit: 1))
    }

    func tokensWithoutProofAreCounted() async throws {
        let trace = Self.randomTrace()
        let first = try await self.stores.usage.consume(self.request(trace, jti: nil, limit: 2))
        let second = try await self.stores.usage.consume(self.request(trace, jti: nil, limit: 2))
        let third = try await self.stores.usage.consume(self.request(trace, jti: nil, limit: 2))
        XCTAssertEqual([first, second, third], [.allowed(used: 1, limit: 2), .allowed(used: 2, limit: 2), .limitReached(limit: 2)])
    }

    /// 500 concurrent calls with distinct proofs: exactly `limit` are allowed.
    func concurrentConsumeAllowsExactlyTheLimit(_ limit: Int) async throws {
        let trace = Self.randomTrace()
        let outcomes = try await self.concurrently(500) { index in
            try await (index.isMultiple(of: 2) ? self.stores : self.other).usage.consume(
                self.request(trace, jti: "jti-\(index)", limit: limit))
        }
        let allowed = outcomes.filter { if case .allowed = $0 { true } else { false } }
        XCTAssertEqual(allowed.count, limit)
        XCTAssertEqual(outcomes.filter { $0 == .limitReached(limit: limit) }.count, 500 - limit)
        XCTAssertEqual(Set(allowed), Set((1...limit).map { ConsumeOutcome.allowed(used: $0, limit: limit) }), "every count handed out once")
    }

    /// 500 concurrent calls with the same proof: one is allowed, the rest are replays.
    func concurrentReplaysAllowOnlyOne() async throws {
        let trace = Self.randomTrace()
        let outcomes = try await self.concurrently(500) { _ in
            try await self.stores.usage.consume(self.request(trace, jti: "same", limit: 100))
        }
        XCTAssertEqual(outcomes.filter { $0 == .allowed(used: 1, limit: 100) }.count, 1)
        XCTAssertEqual(outcomes.filter { $0 == .replayedProof }.count, 499)
    }

    func countersAndProofsExpire() async throws {
        let trace = Self.randomTrace()
        let lifetime = Duration.milliseconds(150)
        _ = try await self.stores.usage.consume(self.request(trace, jti: "a", limit: 1, counterLife: lifetime, window: lifetime))
        let spent = try await self.stores.usage.consume(self.request(trace, jti: "b", limit: 1, counterLife: .seconds(60), window: lifetime))
        XCTAssertEqual(spent, .limitReached(limit: 1), "a later request's expiry does not replace the counter's")
        try await Task.sleep(for: .milliseconds(450))
        let again = try await self.stores.usage.consume(self.request(trace, jti: "a", limit: 1, counterLife: lifetime, window: lifetime))
        XCTAssertEqual(again, .allowed(used: 1, limit: 1), "after the counter's absolute expiry the counter and the jti are gone")

        let proofTrace = Self.randomTrace()
        let long = Duration.seconds(30)
        let short = Duration.milliseconds(150)
        _ = try await self.stores.usage.consume(self.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
        let replay = try await self.stores.usage.consume(self.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
        XCTAssertEqual(replay, .replayedProof)
        try await Task.sleep(for: .milliseconds(300))
        let later = try await self.stores.usage.consume(self.request(proofTrace, jti: "p", limit: 5, counterLife: long, window: short))
        XCTAssertEqual(later, .allowed(used: 2, limit: 5), "the jti is forgotten after the proof window, the counter is not")
    }

    func refundGivesOneUseBack() async throws {
        let trace = Self.randomTrace()
        let unknown = try await self.stores.usage.refund(trace: trace)
        XCTAssertEqual(unknown, .unknownTrace)
        _ = try await self.stores.usage.consume(self.request(trace, limit: 1))
        let spent = try await self.stores.usage.consume(self.request(trace, limit: 1))
        XCTAssertEqual(spent, .limitReached(limit: 1))
        let refunded = try await self.stores.usage.refund(trace: trace)
        XCTAssertEqual(refunded, .refunded)
        let atZero = try await self.other.usage.refund(trace: trace)
        XCTAssertEqual(atZero, .nothingUsed, "never below zero")
        let again = try await self.stores.usage.consume(self.request(trace, limit: 1))
        XCTAssertEqual(again, .allowed(used: 1, limit: 1))
    }

    func rateLimitAllowsTheCapacityThenLimits() async throws {
        let identity = "client:\(UUID().uuidString)"
        for index in 0..<5 {
            let store = index.isMultiple(of: 2) ? self.stores.usage : self.other.usage
            let outcome = try await store.takeRateLimitToken(identity: identity, ratePerMinute: 5)
            XCTAssertEqual(outcome, .allowed, "token \(index + 1) of 5")
        }
        let limited = try await self.other.usage.takeRateLimitToken(identity: identity, ratePerMinute: 5)
        guard case .limited(let retryAfter) = limited else { return XCTFail("the sixth token was \(limited)") }
        XCTAssertGreaterThan(retryAfter, .seconds(10), "one token per 12 s")
        XCTAssertLessThanOrEqual(retryAfter, .seconds(12))
        XCTAssertEqual(limited.retryAfterSeconds, 12)
        let otherIdentity = try await self.stores.usage.takeRateLimitToken(identity: identity + "-2", ratePerMinute: 5)
        XCTAssertEqual(otherIdentity, .allowed, "buckets are per identity")

        // 600 per minute refills one token per 100 ms, also while the burst is being taken.
        let fast = "client:\(UUID().uuidString)"
        let started = ContinuousClock.now
        var allowedCount = 0
        var exhausted = RateLimitOutcome.allowed
        for _ in 0..<700 {
            exhausted = try await self.stores.usage.takeRateLimitToken(identity: fast, ratePerMinute: 600)
            if exhausted != .allowed { break }
            allowedCount += 1
        }
        let refills = Int((ContinuousClock.now - started) / .milliseconds(100)) + 1
        XCTAssertGreaterThanOrEqual(allowedCount, 600, "the whole burst is available")
        XCTAssertLessThanOrEqual(allowedCount, 600 + refills, "no more than the burst plus the refill")
        guard case .limited(let wait) = exhausted else { return XCTFail("700 tokens in a burst of 600 were allowed") }
        XCTAssertLessThanOrEqual(wait, .milliseconds(100))
        try await Task.sleep(for: wait + .milliseconds(20))
        let refilled = try await self.stores.usage.takeRateLimitToken(identity: fast, ratePerMinute: 600)
        XCTAssertEqual(refilled, .allowed, "refilled after retry-after")
    }

    func invalidArgumentsAreRefused() async throws {
        for bad in [self.request("", limit: 1), self.request("a{b", limit: 1), self.request(Self.randomTrace(), limit: 0)] {
            do {
                let outcome = try await self.stores.usage.consume(bad)
                XCTFail("\(bad) was accepted: \(outcome)")
            } catch let error as StoreError {
                XCTAssertEqual(error.code, .invalidArgument)
            }
        }
    }

    func keyRegistryPutRevokeListImport() async throws {
        let keys = self.stores.keys
        let key = RegisteredKey(
            kid: "k1", jwk: #"{"crv":"P-256","kty":"EC","x":"a/b","y":"b"}"#, notAfter: nil, registeredAt: 1000, registeredBy: "issuer-a")
        let created = try await keys.put(key)
        XCTAssertEqual(created, .created(key))
        var again = key
        again.registeredAt = 2000
        again.registeredBy = "issuer-b"
        again.notAfter = 5000
        var expected = key
        expected.notAfter = 5000
        let unchanged = try await self.other.keys.put(again)
        XCTAssertEqual(unchanged, .unchanged(expected), "same key: 200, first registration kept, not_after updated")
        var different = key
        different.jwk = #"{"crv":"P-256","kty":"EC","x":"c","y":"d"}"#
        let conflict = try await keys.put(different)
        XCTAssertEqual(conflict, .conflict(existing: expected))
        let second = RegisteredKey(kid: "k0", jwk: #"{"kty":"OKP"}"#, notAfter: 9, registeredAt: 3, registeredBy: "x")
        let createdSecond = try await keys.put(second)
        XCTAssertEqual(createdSecond, .created(second))
        let listed = try await self.other.keys.list()
        XCTAssertEqual(listed, [second, expected])
        let revoked = try await keys.revoke(kid: "k0", at: 100, forgetAfter: 200)
        let revokedAgain = try await self.other.keys.revoke(kid: "k0", at: 150, forgetAfter: 250)
        let unknown = try await keys.revoke(kid: "nothing", at: 100, forgetAfter: 200)
        let tombstone = RevokedKey(kid: "k0", revokedAt: 100, forgetAfter: 200)
        XCTAssertEqual(revoked, .revoked(tombstone))
        XCTAssertEqual(revokedAgain, .alreadyRevoked(tombstone), "a second revocation keeps the first tombstone")
        XCTAssertEqual(unknown, .unknown)
        let remaining = try await keys.list()
        XCTAssertEqual(remaining, [expected])
        let imported = [RegisteredKey(kid: "z", jwk: "{}", notAfter: nil, registeredAt: 1, registeredBy: "admin")]
        let importOutcome = try await keys.importAll(imported, revoked: [])
        XCTAssertEqual(importOutcome, .imported(1))
        let afterImport = try await self.other.keys.list()
        XCTAssertEqual(afterImport, imported)
        let emptied = try await keys.importAll([], revoked: [])
        XCTAssertEqual(emptied, .imported(0))
        let empty = try await keys.list()
        XCTAssertEqual(empty, [])
        let tombstones = try await keys.revokedKeys()
        XCTAssertEqual(tombstones, [tombstone], "an import never drops a tombstone")
    }

    func keyRegistryTombstonesRefuseTheKidUntilPurged() async throws {
        let keys = self.stores.keys
        let key = RegisteredKey(kid: "k1", jwk: #"{"kty":"OKP","x":"a"}"#, notAfter: nil, registeredAt: 10, registeredBy: "issuer")
        let expiring = RegisteredKey(kid: "k2", jwk: #"{"kty":"OKP","x":"b"}"#, notAfter: 50, registeredAt: 10, registeredBy: "issuer")
        _ = try await keys.put(key)
        _ = try await keys.put(expiring)
        let revocation = try await keys.revoke(kid: "k1", at: 100, forgetAfter: 160)
        let tombstone = RevokedKey(kid: "k1", revokedAt: 100, forgetAfter: 160)
        XCTAssertEqual(revocation, .revoked(tombstone))
        let sameKey = try await self.other.keys.put(key)
        XCTAssertEqual(sameKey, .revoked(tombstone), "the same key is refused")
        var otherKey = key
        otherKey.jwk = #"{"kty":"OKP","x":"c"}"#
        let anotherKey = try await keys.put(otherKey)
        XCTAssertEqual(anotherKey, .revoked(tombstone), "any key is refused under a revoked kid")
        let listed = try await keys.list()
        XCTAssertEqual(listed, [expiring], "a tombstone is not a key")

        // An import holding a revoked kid (stored or imported tombstone) changes nothing.
        let refusedByStored = try await keys.importAll([key], revoked: [])
        XCTAssertEqual(refusedByStored, .revokedKey(tombstone))
        let newer = RevokedKey(kid: "k2", revokedAt: 120, forgetAfter: 180)
        let refusedByImported = try await keys.importAll([expiring], revoked: [newer])
        XCTAssertEqual(refusedByImported, .revokedKey(newer))
        let unchanged = try await self.other.keys.list()
        XCTAssertEqual(unchanged, [expiring])
        let unchangedTombstones = try await keys.revokedKeys()
        XCTAssertEqual(unchangedTombstones, [tombstone])

        // Tombstones merge: of one kid the later forget_after is kept.
        let later = RevokedKey(kid: "k1", revokedAt: 90, forgetAfter: 170)
        let earlier = RevokedKey(kid: "k3", revokedAt: 90, forgetAfter: 95)
        let merged = try await keys.importAll([expiring], revoked: [later, earlier])
        XCTAssertEqual(merged, .imported(1))
        let mergedTombstones = try await keys.revokedKeys()
        XCTAssertEqual(mergedTombstones, [later, earlier])

        // Purge: keys with not_after at or before the first cutoff, tombstones whose
        // forget_after is before the second.
        let nothing = try await keys.purge(keysNotAfterUpTo: 49, tombstonesForgetAfterBefore: 95)
        XCTAssertEqual(nothing, 0)
        let two = try await keys.purge(keysNotAfterUpTo: 50, tombstonesForgetAfterBefore: 170)
        XCTAssertEqual(two, 2, "k2 and the k3 tombstone")
        let leftKeys = try await keys.list()
        XCTAssertEqual(leftKeys, [])
        let leftTombstones = try await keys.revokedKeys()
        XCTAssertEqual(leftTombstones, [later])
        let last = try await keys.purge(keysNotAfterUpTo: 0, tombstonesForgetAfterBefore: 171)
        XCTAssertEqual(last, 1)
        let forgotten = try await keys.put(key)
        XCTAssertEqual(forgotten, .created(key), "a forgotten kid can be registered again")
    }

    /// A counter whose absolute expiry has already passed is never created (it would vanish
    /// at once and its token would start over): the call fails closed and counts nothing.
    func counterExpiryInThePastIsRefused() async throws {
        let trace = Self.randomTrace()
        do {
            let outcome = try await self.stores.usage.consume(self.request(trace, jti: "late", limit: 1, counterLife: .seconds(-5)))
            XCTFail("a counter expiring in the past was created: \(outcome)")
        } catch let error as StoreError {
            XCTAssertEqual(error.code, .clockDisagreement)
            XCTAssertTrue(error.message.contains("clock"), error.message)
        }
        let first = try await self.stores.usage.consume(self.request(trace, jti: "late", limit: 1))
        XCTAssertEqual(first, .allowed(used: 1, limit: 1), "the refused call counted nothing and kept no jti")
    }

    /// Redis only: the counter expires at its absolute time (`PEXPIREAT`), the proof after the proof window.
    func ttlsAreSet() async throws {
        guard let pttl = self.pttl else { return }
        let trace = Self.randomTrace()
        _ = try await self.stores.usage.consume(self.request(trace, jti: "t", limit: 2, counterLife: .seconds(60), window: .seconds(7)))
        let counterTTL = try await pttl("\(self.prefix)trace:{\(trace)}")
        let proofTTL = try await pttl("\(self.prefix)dpop:{\(trace)}:t")
        XCTAssertTrue((59_000...60_000).contains(counterTTL), "counter PTTL \(counterTTL) ms, expected about 60000")
        XCTAssertTrue((6_000...7_000).contains(proofTTL), "proof PTTL \(proofTTL) ms, expected about 7000")
        _ = try await self.stores.usage.consume(self.request(trace, jti: "u", limit: 2, counterLife: .seconds(600), window: .seconds(7)))
        let afterSecondUse = try await pttl("\(self.prefix)trace:{\(trace)}")
        XCTAssertLessThanOrEqual(afterSecondUse, counterTTL, "a later use, whatever expiry it asks for, does not extend the counter")
    }

    func pingSucceeds() async throws {
        try await self.stores.usage.ping()
    }

    private func concurrently(
        _ count: Int, _ body: @escaping @Sendable (Int) async throws -> ConsumeOutcome
    ) async throws -> [ConsumeOutcome] {
        try await withThrowingTaskGroup(of: ConsumeOutcome.self) { group in
            for index in 0..<count { group.addTask { try await body(index) } }
            var outcomes: [ConsumeOutcome] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
    }
}
