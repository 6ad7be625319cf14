public import Logging
public import NIOCore

/// The stores a service uses, built from `store.url`.
public struct Stores: Sendable {
    public let usage: any UsageStore
    public let keys: any KeyRegistryStore
    /// The Redis client behind both stores; `nil` for `memory://`.
    public let redisClient: RedisClient?

    /// Pairs stores built elsewhere (tests, a custom back end).
    public init(usage: any UsageStore, keys: any KeyRegistryStore, redisClient: RedisClient? = nil) {
        self.usage = usage
        self.keys = keys
        self.redisClient = redisClient
    }

    /// Closes the store's connections (a no-op for `memory://`).
    public func shutdown() async {
        await self.redisClient?.shutdown()
    }
}

extension Stores {
    /// Builds the stores for `url` (`memory://`, `redis://`, `rediss://`,
    /// `redis-cluster://`) with keys under `prefix` (docs/configuration.md `store.prefix`). Nothing
    /// is connected yet; call `usage.ping()` to check readiness.
    public static func make(
        url: String, prefix: String = "ekey:", eventLoopGroup: any EventLoopGroup, logger: Logger
    ) throws(StoreError) -> Stores {
        try self.make(url: StoreURL(url), prefix: prefix, eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Builds the stores for an already parsed URL.
    public static func make(
        url: StoreURL, prefix: String = "ekey:", eventLoopGroup: any EventLoopGroup, logger: Logger
    ) throws(StoreError) -> Stores {
        switch url.kind {
        case .memory:
            let store = MemoryStore(maxEntries: url.maxEntries)
            return Stores(usage: store, keys: store, redisClient: nil)
        case .redis, .cluster:
            let client = try RedisClient(url: url, eventLoopGroup: eventLoopGroup, logger: logger)
            return Stores(
                usage: RedisUsageStore(client: client, prefix: prefix), keys: RedisKeyRegistryStore(client: client, prefix: prefix),
                redisClient: client)
        }
    }
}
