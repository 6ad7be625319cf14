import EKeyStore
import EKeyTestSupport
import Foundation
import Testing

/// What only a Redis Cluster has (keys spread over masters, MOVED and ASK), on the suite's
/// own three-master cluster. (The shared behaviour is in `StoreBehaviourTests`.)
@Suite(.serialized, .redisServers(single: false))
struct RedisClusterStoreTests {
    @Test func ttlsAreSet() async throws {
        try await StoreBackend.cluster.withStores { try await $0.expectTTLsAreSet() }
    }

    @Test func tracesSpreadOverEveryMaster() async throws {
        try await StoreBackend.cluster.withStores { s in
            let cluster = try #require(RedisServers.current).cluster()
            for _ in 0..<60 {
                _ = try await s.stores.usage.consume(s.request(StoreUnderTest.randomTrace(), limit: 1))
            }
            for node in cluster.nodes {
                let keys = Int(try node.cli(["DBSIZE"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                #expect(keys > 0, "node \(node.port) holds some of the 60 traces")
            }
        }
    }

    /// The slot moves to another master after the client loaded its slot map: the old
    /// owner answers MOVED, and the client follows it to the counter's new home.
    @Test func movedIsFollowed() async throws {
        try await StoreBackend.cluster.withStores { s in
            let cluster = try #require(RedisServers.current).cluster()
            let trace = StoreUnderTest.randomTrace()
            let key = "\(s.prefix)trace:{\(trace)}"
            let first = try await s.stores.usage.consume(s.request(trace, limit: 5))
            #expect(first == .allowed(used: 1, limit: 5))

            let slot = try cluster.slot(of: key)
            let source = try cluster.owner(ofSlot: slot)
            let target = try #require(cluster.nodes.first { $0.port != source.port })
            try cluster.beginMigration(slot: slot, from: source, to: target)
            try cluster.finishMigration(slot: slot, from: source, to: target)
            #expect(try target.cli(["EXISTS", key]).trimmingCharacters(in: .whitespacesAndNewlines) == "1", "MIGRATE moved the counter")
            #expect(try source.cli(["EXISTS", key]).contains("MOVED"), "the old owner redirects")

            let second = try await s.stores.usage.consume(s.request(trace, limit: 5))
            #expect(second == .allowed(used: 2, limit: 5), "the client followed MOVED to the migrated counter")
            let third = try await s.other.usage.consume(s.request(trace, limit: 5))
            #expect(third == .allowed(used: 3, limit: 5))

            try cluster.beginMigration(slot: slot, from: target, to: source)
            try cluster.finishMigration(slot: slot, from: target, to: source)
            let back = try await s.stores.usage.consume(s.request(trace, limit: 5))
            #expect(back == .allowed(used: 4, limit: 5))
        }
    }

    /// During a migration the source answers ASK for a key it does not have: the client
    /// sends ASKING and the script to the importing node (loading the script there).
    @Test func askIsFollowedDuringMigration() async throws {
        try await StoreBackend.cluster.withStores { s in
            let cluster = try #require(RedisServers.current).cluster()
            let warmTrace = StoreUnderTest.randomTrace()
            _ = try await s.stores.usage.consume(s.request(warmTrace, limit: 5))

            let trace = StoreUnderTest.randomTrace()
            let key = "\(s.prefix)trace:{\(trace)}"
            let slot = try cluster.slot(of: key)
            let source = try cluster.owner(ofSlot: slot)
            let target = try #require(cluster.nodes.first { $0.port != source.port })
            try target.cli(["SCRIPT", "FLUSH"])
            try cluster.beginMigration(slot: slot, from: source, to: target)
            defer {
                try? cluster.finishMigration(slot: slot, from: source, to: target)
                try? cluster.beginMigration(slot: slot, from: target, to: source)
                try? cluster.finishMigration(slot: slot, from: target, to: source)
            }

            let outcome = try await s.stores.usage.consume(s.request(trace, jti: nil, limit: 2))
            #expect(outcome == .allowed(used: 1, limit: 2))
            #expect(try Self.countKeysInSlot(slot, on: target) == 1, "the counter was created on the importing node")
            #expect(try Self.countKeysInSlot(slot, on: source) == 0, "nothing was written on the migrating node")

            // Two new keys of a slot in migration: Redis answers TRYAGAIN until it is done;
            // the client retries, then fails closed.
            let error = await #expect(throws: StoreError.self, "a multi-key script ran during the migration") {
                try await s.stores.usage.consume(s.request(trace, jti: "j", limit: 2))
            }
            #expect(error?.code == .unavailable, "\(String(describing: error))")
        }
    }

    private static func countKeysInSlot(_ slot: Int, on node: RedisServer) throws -> Int {
        Int(try node.cli(["CLUSTER", "COUNTKEYSINSLOT", String(slot)]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
