/// The usage store on Redis: every check-and-count is one Lua script call.
///
/// Keys (docs/spec/gateway.md): `<prefix>trace:{<trace>}` (hash: limit, used, exp, sub; expires at
/// the token's `exp` + clock skew + a margin, set once with `PEXPIREAT`), `<prefix>dpop:{<trace>}:<jti>` (TTL the proof window) and
/// `<prefix>rate:{<identity>}` (GCRA arrival time). The hash tag keeps one call's keys
/// in one cluster slot.
public struct RedisUsageStore: UsageStore {
    public let client: RedisClient
    public let prefix: String

    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    public func traceKey(_ trace: String) -> String { "\(self.prefix)trace:{\(trace)}" }
    public func proofKey(trace: String, jti: String) -> String { "\(self.prefix)dpop:{\(trace)}:\(jti)" }
    public func rateKey(_ identity: String) -> String { "\(self.prefix)rate:{\(identity)}" }

    public func consume(_ request: ConsumeRequest) async throws -> ConsumeOutcome {
        try request.validate()
        var keys = [self.traceKey(request.trace)]
        if let jti = request.jti { keys.append(self.proofKey(trace: request.trace, jti: jti)) }
        let arguments = [
            String(request.limit), request.subject, String(request.counterExpiresAtMilliseconds),
            String(request.proofWindow.milliseconds), String(request.expiresAt),
        ]
        let reply = try await self.client.run(RedisScripts.consume, keys: keys, arguments: arguments)
        guard let values = reply.array, values.count == 3, let status = values[0].int, let used = values[1].int,
            let limit = values[2].int
        else { throw StoreError.protocolViolation(self.client.url.description, "consume.lua returned \(reply)") }
        switch status {
        case 1: return .allowed(used: used, limit: limit)
        case 2: return .replayedProof
        case 3: return .limitReached(limit: limit)
        case 4: throw StoreError.counterExpiryPassed(self.client.url.description)
        default: throw StoreError.protocolViolation(self.client.url.description, "consume.lua returned status \(status)")
        }
    }

    public func refund(trace: String) async throws -> RefundOutcome {
        let reply = try await self.client.run(RedisScripts.refund, keys: [self.traceKey(trace)], arguments: [])
        switch reply.int {
        case 0: return .unknownTrace
        case 1: return .nothingUsed
        case 2: return .refunded
        default: throw StoreError.protocolViolation(self.client.url.description, "refund.lua returned \(reply)")
        }
    }

    public func takeRateLimitToken(identity: String, ratePerMinute: Int) async throws -> RateLimitOutcome {
        try validateRate(identity: identity, ratePerMinute: ratePerMinute)
        let reply = try await self.client.run(
            RedisScripts.rateLimit, keys: [self.rateKey(identity)], arguments: [String(ratePerMinute), "60000"])
        guard let values = reply.array, values.count == 2, let allowed = values[0].int, let retryAfter = values[1].int else {
            throw StoreError.protocolViolation(self.client.url.description, "rate_limit.lua returned \(reply)")
        }
        return allowed == 1 ? .allowed : .limited(retryAfter: .milliseconds(max(1, retryAfter)))
    }

    public func ping() async throws {
        try await self.client.ping()
    }
}
