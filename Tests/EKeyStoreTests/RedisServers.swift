import Dispatch
import EKeyTestSupport
import Foundation
import Testing

/// The Redis servers of one suite: a `redis-server` and a Redis Cluster on free loopback
/// ports, started before the suite's first test and stopped after its last (the
/// ``Testing/Trait/redisServers(single:cluster:)`` trait), as XCTest's class `setUp` and
/// `tearDown` did. Each suite gets its own, so a test that flushes scripts or moves slots
/// cannot disturb another suite's.
final class RedisServers: Sendable {
    @TaskLocal static var current: RedisServers?

    private let single: RedisServer?
    private let clusterNodes: RedisCluster?

    fileprivate init(single: RedisServer?, cluster: RedisCluster?) {
        self.single = single
        self.clusterNodes = cluster
    }

    /// The suite's `redis-server`.
    func server() throws -> RedisServer {
        try #require(single, "the suite's trait did not ask for a redis-server")
    }

    /// The suite's Redis Cluster.
    func cluster() throws -> RedisCluster {
        try #require(clusterNodes, "the suite's trait did not ask for a Redis Cluster")
    }

    fileprivate func shutdown() {
        single?.shutdown()
        clusterNodes?.shutdown()
    }
}

/// Starts the servers a suite asked for around the whole suite.
struct RedisServersTrait: SuiteTrait, TestScoping {
    let single: Bool
    let cluster: Bool

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let servers = try await Self.start(single: single, cluster: cluster)
        defer { servers.shutdown() }
        try await RedisServers.$current.withValue(servers) {
            try await function()
        }
    }

    /// Starting blocks (processes, `redis-cli --cluster create`, polling): it runs on a
    /// dispatch thread, not on one of the few cooperative threads the other tests share.
    private static func start(single: Bool, cluster: Bool) async throws -> RedisServers {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                var server: RedisServer?
                do {
                    server = single ? try RedisServer() : nil
                    let nodes = cluster ? try RedisCluster() : nil
                    continuation.resume(returning: RedisServers(single: server, cluster: nodes))
                } catch {
                    server?.shutdown()
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

extension Trait where Self == RedisServersTrait {
    /// A `redis-server` and/or a Redis Cluster for the suite (``RedisServers/current``).
    static func redisServers(single: Bool = true, cluster: Bool = true) -> Self {
        RedisServersTrait(single: single, cluster: cluster)
    }
}
