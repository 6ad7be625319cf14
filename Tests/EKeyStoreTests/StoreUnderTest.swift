import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOPosix
import Testing

/// A back end the store tests run on: the embedded store, one `redis-server`, or a
/// three-master Redis Cluster (the servers are the suite's, from ``RedisServers``).
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, redis, cluster

    var testDescription: String { rawValue }

    /// Runs `body` with two fresh clients of this back end, then closes them.
    func withStores(_ body: (StoreUnderTest) async throws -> Void) async throws {
        let store = try StoreUnderTest(self)
        do {
            try await body(store)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }
}

/// The stores of one back end as a test sees them: two clients sharing one key space,
/// with helpers to build requests and to let time pass.
struct StoreUnderTest: Sendable {
    let backend: StoreBackend
    /// The store under test.
    let stores: Stores
    /// A second client of the same back end (the same instance for memory).
    let other: Stores
    /// The key prefix (Redis); each test gets its own.
    let prefix: String
    /// The memory store's clock; `nil` for Redis, whose server reads the wall clock.
    let clock: TestClock?
    /// The memory store itself, for what only it has (`entryCount`).
    let memory: MemoryStore?
    /// The wall clock in epoch milliseconds as the store sees it: for memory it follows
    /// `clock`, so a counter's absolute expiry and the store's time agree.
    let epochMilliseconds: @Sendable () -> Int64

    init(_ backend: StoreBackend, maxEntries: Int = 1_000_000) throws {
        self.backend = backend
        switch backend {
        case .memory:
            let clock = TestClock()
            let start = clock.now
            let startEpoch = WallClock.epochMilliseconds()
            let store = MemoryStore(maxEntries: maxEntries, now: { clock.now }, epochMilliseconds: startEpoch)
            self.stores = Stores(usage: store, keys: store, redisClient: nil)
            self.other = self.stores
            self.prefix = ""
            self.clock = clock
            self.memory = store
            self.epochMilliseconds = { startEpoch + Int64((clock.now - start) / .milliseconds(1)) }
        case .redis, .cluster:
            let servers = try #require(RedisServers.current, "the suite needs the .redisServers trait")
            let url = backend == .redis ? try servers.server().url : try servers.cluster().url
            let prefix = "test-\(UUID().uuidString.prefix(8)):"
            let make = { try Stores.make(url: url, prefix: prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test")) }
            self.stores = try make()
            self.other = try make()
            self.prefix = prefix
            self.clock = nil
            self.memory = nil
            self.epochMilliseconds = { WallClock.epochMilliseconds() }
        }
    }

    func shutdown() async {
        await stores.shutdown()
        await other.shutdown()
    }

    /// Lets `duration` pass: the memory store's clock is moved on, Redis is waited for.
    func elapse(_ duration: Duration) async throws {
        if let clock {
            clock.advance(by: duration)
        } else {
            try await Task.sleep(for: duration)
        }
    }

    /// A key's PTTL in ms, asked of the node holding it; Redis only.
    func pttl(_ key: String) async throws -> Int {
        let client = try #require(stores.redisClient, "PTTL needs a Redis back end")
        return try await client.send(RedisCommand("PTTL", key), routingKey: backend == .cluster ? key : nil).int ?? -3
    }

    static func randomTrace() -> String {
        (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// A consume request for `trace`, its counter expiring `counterLife` from now.
    func request(
        _ trace: String, jti: String? = UUID().uuidString, limit: Int, counterLife: Duration = .seconds(60),
        window: Duration = .seconds(10)
    ) -> ConsumeRequest {
        let now = epochMilliseconds()
        return ConsumeRequest(
            trace: trace, jti: jti, limit: limit, subject: "spiffe://example.org/test",
            counterExpiresAtMilliseconds: now + Int64(counterLife / .milliseconds(1)), proofWindow: window, expiresAt: now / 1000 + 30)
    }

    /// Runs `body` `count` times concurrently and collects the outcomes.
    func concurrently(
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
