internal import NIOConcurrencyHelpers
public import NIOCore
internal import NIOSSL
public import Logging

/// An asynchronous Redis client: hiredis encodes and parses RESP, SwiftNIO does the I/O.
///
/// - A pool of `pool_size` connections per node; concurrent commands are pipelined on
///   each connection and their replies matched in order.
/// - Scripts run with `EVALSHA`; a `NOSCRIPT` answer loads the script (`SCRIPT LOAD`) on
///   that node and retries, so a flushed or restarted server needs no care.
/// - `AUTH` (user and password, or password only) and `SELECT` on every new connection.
/// - Connect and command timeouts; a broken connection is reopened with backoff, so a
///   server that comes back on the same address is used again without a new client.
/// - TLS for `rediss://`; Redis Cluster for `redis-cluster://` (slot map from
///   `CLUSTER SLOTS`, `MOVED` and `ASK` followed).
///
/// Every failure is thrown as a `StoreError`.
public final class RedisClient: Sendable {
    /// The URL this client talks to (its `description` masks the password).
    public let url: StoreURL
    private let configuration: RedisConnectionConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let topology: Topology
    private static let maximumAttempts = 8

    private enum Topology: Sendable {
        case single(RedisNodePool)
        case cluster(NIOLockedValueBox<ClusterState>)
    }

    private struct ClusterState: Sendable {
        var seeds: [StoreURL.Endpoint]
        var slots = ClusterSlotMap()
        var loaded = false
        var pools: [StoreURL.Endpoint: RedisNodePool] = [:]
        var refresh: Task<Void, any Error>?
        var closed = false
    }

    /// Creates a client for a `redis://`, `rediss://` or `redis-cluster://` URL; nothing is
    /// connected until the first command.
    public init(url: StoreURL, eventLoopGroup: any EventLoopGroup, logger: Logger) throws(StoreError) {
        guard url.kind != .memory, let first = url.endpoints.first else {
            throw StoreError(.invalidURL, "store.url \(url) is not a Redis URL; use redis://, rediss:// or redis-cluster://")
        }
        var tlsContext: NIOSSLContext? = nil
        if url.tls {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile = url.caFile {
                tls.trustRoots = .file(caFile)
            }
            do {
                tlsContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw StoreError(.invalidURL, "store.url \(url) has unusable TLS settings (\(error)); check the ca file")
            }
        }
        self.url = url
        self.group = eventLoopGroup
        self.logger = logger
        self.configuration = RedisConnectionConfiguration(
            tls: tlsContext, tlsServerName: url.tlsServerName, username: url.username, password: url.password,
            database: url.database, connectTimeout: .milliseconds(Int64(url.connectTimeoutMilliseconds)),
            commandTimeout: .milliseconds(Int64(url.commandTimeoutMilliseconds)), urlDescription: url.description)
        switch url.kind {
        case .cluster:
            self.topology = .cluster(NIOLockedValueBox(ClusterState(seeds: url.endpoints)))
        default:
            self.topology = .single(
                RedisNodePool(endpoint: first, size: url.poolSize, configuration: self.configuration, group: eventLoopGroup))
        }
    }

    /// Sends one command and returns its reply; error replies other than redirections are
    /// returned as `.error`. In a cluster, `routingKey` picks the node (the slot of that key).
    public func send(_ command: RedisCommand, routingKey: String? = nil) async throws -> RedisValue {
        try await self.execute(command, routingKey: routingKey, script: nil)
    }

    /// Runs `script` with `EVALSHA` (loading it on `NOSCRIPT`) and returns its result; an
    /// error reply is thrown as `StoreError` with code `.serverError`.
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws -> RedisValue {
        let command = RedisCommand(["EVALSHA", script.sha1, String(keys.count)] + keys + arguments)
        let reply = try await self.execute(command, routingKey: keys.first, script: script)
        if let message = reply.errorMessage {
            throw self.serverError(message, doing: "running \(script.name)")
        }
        return reply
    }

    /// Checks that every node answers `PING` (in a cluster: every master of the slot map).
    public func ping() async throws {
        for pool in try await self.allPools() {
            let reply = try await self.mapErrors { try await pool.connection().flatMap { $0.send(RedisCommand("PING")) }.get() }
            if let message = reply.errorMessage { throw self.serverError(message, doing: "PING to \(pool.endpoint)") }
        }
    }

    /// Closes every connection; the client cannot be used afterwards.
    public func shutdown() async {
        switch self.topology {
        case .single(let pool):
            await pool.shutdown()
        case .cluster(let state):
            let pools = state.withLockedValue { state in
                state.closed = true
                state.refresh?.cancel()
                return Array(state.pools.values)
            }
            for pool in pools { await pool.shutdown() }
        }
    }

    // MARK: Execution

    private func execute(_ command: RedisCommand, routingKey: String?, script: RedisScript?) async throws -> RedisValue {
        try await self.mapErrors {
            var askTarget: StoreURL.Endpoint? = nil
            var scriptLoaded = false
            var attempt = 0
            while true {
                attempt += 1
                let pool = try await self.pool(for: routingKey, askTarget: askTarget)
                let commands = askTarget == nil ? [command] : [RedisCommand("ASKING"), command]
                let connection: RedisConnection
                let reply: RedisValue
                do {
                    (connection, reply) = try await pool.connection().flatMap { connection in
                        connection.send(batch: commands).last!.map { (connection, $0) }
                    }.get()
                } catch {
                    // A node that cannot be reached may have failed over: learn the new map.
                    if case .cluster = self.topology { self.refreshInBackground() }
                    throw error
                }
                guard case .error(let message) = reply else { return reply }
                let transient = ["TRYAGAIN", "CLUSTERDOWN", "LOADING"].contains { message.hasPrefix($0) }
                guard attempt < Self.maximumAttempts else {
                    if transient {
                        throw StoreError.unavailable(self.url.description, "the server kept answering \(message) after \(attempt) attempts")
                    }
                    return reply
                }

                if message.hasPrefix("NOSCRIPT"), let script, !scriptLoaded {
                    self.logger.debug("loading Redis script", metadata: ["script": "\(script.name)", "node": "\(pool.endpoint)"])
                    let loaded = try await connection.send(RedisCommand("SCRIPT", "LOAD", script.source)).get()
                    if let error = loaded.errorMessage { throw self.serverError(error, doing: "loading \(script.name)") }
                    scriptLoaded = true
                    continue
                }
                if case .cluster(let state) = self.topology, let redirect = ClusterRedirect(errorMessage: message) {
                    switch redirect {
                    case .moved(let slot, let target):
                        let owner = target.host.isEmpty ? StoreURL.Endpoint(host: pool.endpoint.host, port: target.port) : target
                        state.withLockedValue { $0.slots[slot] = owner }
                        self.refreshInBackground()
                        askTarget = nil
                    case .ask(_, let target):
                        askTarget = target.host.isEmpty ? StoreURL.Endpoint(host: pool.endpoint.host, port: target.port) : target
                    }
                    continue
                }
                if transient {
                    try await Task.sleep(for: .milliseconds(25 * attempt))
                    if message.hasPrefix("CLUSTERDOWN") { self.refreshInBackground() }
                    askTarget = nil
                    continue
                }
                return reply
            }
        }
    }

    private func mapErrors<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as StoreError {
            throw error
        } catch is CancellationError {
            throw StoreError.unavailable(self.url.description, "the request was cancelled")
        } catch {
            throw StoreError.unavailable(self.url.description, RedisConnection.describe(error))
        }
    }

    private func serverError(_ message: String, doing what: String) -> StoreError {
        if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") || message.hasPrefix("NOPERM") {
            return StoreError(
                .authenticationFailed,
                "store \(self.url) refused \(what) (\(message)); check the user, password and ACL permissions in store.url")
        }
        return StoreError(.serverError, "store \(self.url) failed \(what): \(message)")
    }

    // MARK: Cluster routing

    private func pool(for key: String?, askTarget: StoreURL.Endpoint?) async throws -> RedisNodePool {
        let state: NIOLockedValueBox<ClusterState>
        switch self.topology {
        case .single(let pool): return pool
        case .cluster(let cluster): state = cluster
        }
        if let askTarget { return self.clusterPool(askTarget, state: state) }
        let slot = key.map(ClusterSlot.of)
        func owner() -> StoreURL.Endpoint? {
            state.withLockedValue { state in
                guard state.loaded else { return nil }
                guard let slot else { return state.slots.nodes.first ?? state.seeds.first }
                return state.slots[slot]
            }
        }
        if let endpoint = owner() { return self.clusterPool(endpoint, state: state) }
        try await self.refreshSlots()
        guard let endpoint = owner() else {
            throw StoreError.unavailable(self.url.description, "no cluster node serves slot \(slot ?? -1); check CLUSTER INFO and CLUSTER SLOTS")
        }
        return self.clusterPool(endpoint, state: state)
    }

    private func clusterPool(_ endpoint: StoreURL.Endpoint, state: NIOLockedValueBox<ClusterState>) -> RedisNodePool {
        state.withLockedValue { state in
            if let pool = state.pools[endpoint] { return pool }
            let pool = RedisNodePool(endpoint: endpoint, size: self.url.poolSize, configuration: self.configuration, group: self.group)
            state.pools[endpoint] = pool
            return pool
        }
    }

    private func allPools() async throws -> [RedisNodePool] {
        switch self.topology {
        case .single(let pool):
            return [pool]
        case .cluster(let state):
            try await self.refreshSlots()
            let nodes = state.withLockedValue { $0.slots.nodes }
            return nodes.map { self.clusterPool($0, state: state) }
        }
    }

    private func refreshInBackground() {
        Task { try? await self.refreshSlots() }
    }

    /// Reloads the slot map with `CLUSTER SLOTS` from a known node or a seed; concurrent
    /// callers share one refresh.
    private func refreshSlots() async throws {
        guard case .cluster(let box) = self.topology else { return }
        let task: Task<Void, any Error> = box.withLockedValue { state in
            if let running = state.refresh { return running }
            let task = Task { try await self.loadSlots(state: box) }
            state.refresh = task
            return task
        }
        defer {
            box.withLockedValue { state in
                if state.refresh == task { state.refresh = nil }
            }
        }
        try await task.value
    }

    private func loadSlots(state: NIOLockedValueBox<ClusterState>) async throws {
        let candidates: [StoreURL.Endpoint] = state.withLockedValue { state in
            var seen = Set<StoreURL.Endpoint>()
            return (state.slots.nodes + state.seeds).filter { seen.insert($0).inserted }
        }
        var failures: [String] = []
        for endpoint in candidates {
            do {
                let pool = self.clusterPool(endpoint, state: state)
                let reply = try await pool.connection().flatMap { $0.send(RedisCommand("CLUSTER", "SLOTS")) }.get()
                if let message = reply.errorMessage {
                    if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") {
                        throw self.serverError(message, doing: "CLUSTER SLOTS")
                    }
                    failures.append("\(endpoint): \(message)")
                    continue
                }
                guard let map = ClusterSlotMap(clusterSlots: reply, answeredBy: endpoint), !map.nodes.isEmpty else {
                    failures.append("\(endpoint): CLUSTER SLOTS reply unreadable or empty")
                    continue
                }
                state.withLockedValue { state in
                    state.slots = map
                    state.loaded = true
                }
                self.logger.debug("Redis Cluster slot map loaded", metadata: ["from": "\(endpoint)", "nodes": "\(map.nodes.count)"])
                return
            } catch let error as StoreError where error.code == .authenticationFailed {
                throw error
            } catch {
                failures.append("\(endpoint): \(error)")
            }
        }
        throw StoreError.unavailable(
            self.url.description, "no cluster node answered CLUSTER SLOTS (\(failures.joined(separator: "; ")))")
    }
}
