public import Foundation

/// A three-master Redis Cluster on free loopback ports, for tests.
public final class RedisCluster: @unchecked Sendable {
    public let nodes: [RedisServer]

    /// Starts three `--cluster-enabled` servers, joins them with `redis-cli --cluster
    /// create`, and waits until every node reports `cluster_state:ok`.
    public init() throws {
        var nodes: [RedisServer] = []
        do {
            for _ in 0..<3 {
                let port = try RedisServer.freePort()
                nodes.append(
                    try RedisServer(
                        arguments: [
                            "--cluster-enabled", "yes", "--cluster-config-file", "nodes-\(port).conf", "--cluster-node-timeout", "5000",
                        ], port: port))
            }
            self.nodes = nodes
            try RedisServer.run(
                ["redis-cli", "--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-yes"])
            try self.waitUntilOK()
        } catch {
            for node in nodes { node.shutdown() }
            throw error
        }
    }

    deinit {
        self.shutdown()
    }

    /// `redis-cluster://` URL listing every node.
    public var url: String { "redis-cluster://" + self.nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    public func waitUntilOK(timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let states = self.nodes.map { (try? $0.cli(["CLUSTER", "INFO"])) ?? "" }
            if states.allSatisfy({ $0.contains("cluster_state:ok") }) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ExternalCommand.Failure(description: "the Redis Cluster did not reach cluster_state:ok within \(timeout) s")
    }

    /// The node ID of `node` (`CLUSTER MYID`).
    public func nodeID(_ node: RedisServer) throws -> String {
        try node.cli(["CLUSTER", "MYID"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    public func slot(of key: String) throws -> Int {
        let text = try self.nodes[0].cli(["CLUSTER", "KEYSLOT", key]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let slot = Int(text) else { throw ExternalCommand.Failure(description: "CLUSTER KEYSLOT answered \(text)") }
        return slot
    }

    /// The master serving `slot`, as node 0 sees it (`CLUSTER NODES`).
    public func owner(ofSlot slot: Int) throws -> RedisServer {
        let listing = try self.nodes[0].cli(["CLUSTER", "NODES"])
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 9, fields[2].contains("master") else { continue }
            for range in fields[8...] where !range.hasPrefix("[") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                let (low, high) = bounds.count == 2 ? (bounds[0], bounds[1]) : (bounds[0], bounds[0])
                if (low...high).contains(slot) {
                    let port = Int(fields[1].split(separator: ":")[1].split(separator: "@")[0])
                    if let node = self.nodes.first(where: { $0.port == port }) { return node }
                }
            }
        }
        throw ExternalCommand.Failure(description: "no master serves slot \(slot)")
    }

    /// Starts moving `slot` from `source` to `target` (IMPORTING on the target,
    /// MIGRATING on the source): the source then answers ASK for keys it no longer has.
    public func beginMigration(slot: Int, from source: RedisServer, to target: RedisServer) throws {
        try target.cli(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", try self.nodeID(source)])
        try source.cli(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", try self.nodeID(target)])
    }

    /// Moves the keys of `slot` with MIGRATE and assigns the slot to `target` on every
    /// node: a client with the old slot map then gets MOVED from `source`.
    public func finishMigration(slot: Int, from source: RedisServer, to target: RedisServer) throws {
        let keys = try source.cli(["CLUSTER", "GETKEYSINSLOT", String(slot), "1000"]).split(separator: "\n").map(String.init)
            .filter { !$0.isEmpty }
        if !keys.isEmpty {
            try source.cli(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS"] + keys)
        }
        let targetID = try self.nodeID(target)
        for node in self.nodes {
            try node.cli(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID])
        }
    }

    /// Ends every node and removes their folders.
    public func shutdown() {
        for node in self.nodes { node.shutdown() }
    }
}
