import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOPosix
import Testing

/// What only Redis has (TTLs, scripts, databases), on the suite's own `redis-server`. (The
/// shared behaviour is in `StoreBehaviourTests`.)
@Suite(.serialized, .redisServers(cluster: false))
struct RedisStoreTests {
    @Test func ttlsAreSet() async throws {
        try await StoreBackend.redis.withStores { try await $0.expectTTLsAreSet() }
    }

    @Test func embeddedScriptDigestsMatchTheServers() async throws {
        try await StoreBackend.redis.withStores { s in
            let client = try #require(s.stores.redisClient)
            for script in [
                RedisScripts.consume, RedisScripts.refund, RedisScripts.rateLimit, RedisScripts.keyRegistryPut, RedisScripts.keyRegistryImport,
                RedisScripts.keyRegistryRevoke, RedisScripts.keyRegistryPurge,
            ] {
                #expect(script.source.contains("KEYS[1]"), "\(script.name) is embedded")
                let loaded = try await client.send(RedisCommand("SCRIPT", "LOAD", script.source))
                #expect(loaded.string == script.sha1, "\(script.name)")
            }
        }
    }

    @Test func scriptFlushIsHealedByLoadingAgain() async throws {
        try await StoreBackend.redis.withStores { s in
            let client = try #require(s.stores.redisClient)
            let trace = StoreUnderTest.randomTrace()
            let first = try await s.stores.usage.consume(s.request(trace, limit: 3))
            #expect(first == .allowed(used: 1, limit: 3))
            let flushed = try await client.send(RedisCommand("SCRIPT", "FLUSH"))
            #expect(flushed == .simpleString("OK"))
            let exists = try await client.send(RedisCommand("SCRIPT", "EXISTS", RedisScripts.consume.sha1))
            #expect(exists == .array([.integer(0)]))
            let second = try await s.stores.usage.consume(s.request(trace, limit: 3))
            #expect(second == .allowed(used: 2, limit: 3), "NOSCRIPT was answered with SCRIPT LOAD and a retry")
        }
    }

    @Test func selectedDatabaseHoldsTheKeys() async throws {
        try await StoreBackend.redis.withStores { s in
            let server = try #require(RedisServers.current).server()
            let prefix = "db-\(UUID().uuidString.prefix(8)):"
            let stores = try Stores.make(
                url: "\(server.url)/3", prefix: prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let trace = StoreUnderTest.randomTrace()
            do {
                _ = try await stores.usage.consume(s.request(trace, limit: 1))
            } catch {
                await stores.shutdown()
                throw error
            }
            await stores.shutdown()
            let key = "\(prefix)trace:{\(trace)}"
            #expect(try server.cli(["-n", "3", "EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            #expect(try server.cli(["-n", "0", "EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            #expect(try server.cli(["-n", "3", "HGET", key, "sub"]).trimmingCharacters(in: .whitespacesAndNewlines) == "spiffe://example.org/test")
        }
    }

    @Test func pipelinedCommandsGetTheirOwnReplies() async throws {
        try await StoreBackend.redis.withStores { s in
            let client = try #require(s.stores.redisClient)
            let replies = try await withThrowingTaskGroup(of: (Int, RedisValue).self) { group in
                for index in 0..<2000 {
                    group.addTask { (index, try await client.send(RedisCommand("ECHO", "value-\(index)"))) }
                }
                var replies: [Int: RedisValue] = [:]
                for try await (index, reply) in group { replies[index] = reply }
                return replies
            }
            #expect(replies.count == 2000)
            for (index, reply) in replies where reply.string != "value-\(index)" {
                Issue.record("command \(index) got \(reply)")
                return
            }
            let big = String(repeating: "x", count: 300_000)
            let echoed = try await client.send(RedisCommand("ECHO", big))
            #expect(echoed.string == big, "a reply spanning many reads")
        }
    }
}

extension StoreUnderTest {
    /// Redis only: the counter expires at its absolute time (`PEXPIREAT`), the proof after the proof window.
    func expectTTLsAreSet() async throws {
        let trace = Self.randomTrace()
        _ = try await stores.usage.consume(request(trace, jti: "t", limit: 2, counterLife: .seconds(60), window: .seconds(7)))
        let counterTTL = try await pttl("\(prefix)trace:{\(trace)}")
        let proofTTL = try await pttl("\(prefix)dpop:{\(trace)}:t")
        // Up to 5 s pass between the call and the reads when the suites run in parallel on a
        // loaded machine; the bounds still tell 60 s from 7 s and 600 s.
        #expect((55_000...60_000).contains(counterTTL), "counter PTTL \(counterTTL) ms, expected about 60000")
        #expect((2_000...7_000).contains(proofTTL), "proof PTTL \(proofTTL) ms, expected about 7000")
        _ = try await stores.usage.consume(request(trace, jti: "u", limit: 2, counterLife: .seconds(600), window: .seconds(7)))
        let afterSecondUse = try await pttl("\(prefix)trace:{\(trace)}")
        #expect(afterSecondUse <= counterTTL, "a later use, whatever expiry it asks for, does not extend the counter")
    }
}
