/// Which node serves each of the 16384 slots, as `CLUSTER SLOTS` reported it, updated by
/// `MOVED` answers between refreshes.
struct ClusterSlotMap: Sendable {
    private(set) var owners: [StoreURL.Endpoint?] = Array(repeating: nil, count: ClusterSlot.count)

    var nodes: [StoreURL.Endpoint] {
        var seen = Set<StoreURL.Endpoint>()
        return self.owners.compactMap { owner in
            guard let owner, seen.insert(owner).inserted else { return nil }
            return owner
        }
    }

    var isComplete: Bool { !self.owners.contains(nil) }

    subscript(slot: Int) -> StoreURL.Endpoint? {
        get { self.owners[slot] }
        set { self.owners[slot] = newValue }
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id...], replicas...]...]`.
    /// An empty host (a node that does not know its address) means the node that answered.
    init?(clusterSlots reply: RedisValue, answeredBy: StoreURL.Endpoint) {
        guard let ranges = reply.array else { return nil }
        for range in ranges {
            guard let fields = range.array, fields.count >= 3,
                let start = fields[0].int, let end = fields[1].int, start >= 0, end < ClusterSlot.count, start <= end,
                let master = fields[2].array, master.count >= 2, let host = master[0].string, let port = master[1].int
            else { return nil }
            let owner = host.isEmpty || host == "?" ? answeredBy : StoreURL.Endpoint(host: host, port: port)
            for slot in start...end {
                self.owners[slot] = owner
            }
        }
    }

    init() {}
}

/// A cluster redirection found in an error reply.
enum ClusterRedirect: Equatable {
    case moved(slot: Int, to: StoreURL.Endpoint)
    case ask(slot: Int, to: StoreURL.Endpoint)

    /// Parses `MOVED 3999 127.0.0.1:6381` and `ASK 3999 127.0.0.1:6381`.
    init?(errorMessage: String) {
        let parts = errorMessage.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let endpoint = StoreURL.Endpoint(host: host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, to: endpoint) : .ask(slot: slot, to: endpoint)
    }
}
