/// One use of an E-Key at the gateway (docs/spec/gateway.md step 5).
public struct ConsumeRequest: Sendable, Hashable {
    /// The token's `trace` (32 lowercase hex characters); the counter's name.
    public var trace: String
    /// The DPoP proof's `jti`; `nil` for mTLS-bound tokens, which carry no proof.
    public var jti: String?
    /// The token's `cap.limit` (>= 1). The first use of a trace fixes it.
    public var limit: Int
    /// The token's `sub`, stored with the counter for operators.
    public var subject: String
    /// When the counter may be forgotten, in epoch milliseconds: an absolute moment set
    /// when the counter is created and never moved, no earlier than the last moment any
    /// gateway could still accept the token (`exp` + clock skew, plus a margin). A TTL
    /// counted from the first use would let a short-lived token outlive its counter and
    /// start again from zero.
    public var counterExpiresAtMilliseconds: Int64
    /// How long a proof's `jti` is remembered (at least the proof's accepted age plus skew).
    public var proofWindow: Duration
    /// The token's `exp` (epoch seconds), stored with the counter for operators.
    public var expiresAt: Int64

    public init(
        trace: String, jti: String?, limit: Int, subject: String, counterExpiresAtMilliseconds: Int64, proofWindow: Duration,
        expiresAt: Int64 = 0
    ) {
        self.trace = trace
        self.jti = jti
        self.limit = limit
        self.subject = subject
        self.counterExpiresAtMilliseconds = counterExpiresAtMilliseconds
        self.proofWindow = proofWindow
        self.expiresAt = expiresAt
    }

    /// The counter expiry for a token whose `exp` is `expiresAt` (epoch seconds), accepted
    /// up to `clockSkew` late: `exp + clockSkew + counterMargin`.
    public static func counterExpiry(expiresAt: Int64, clockSkew: Duration) -> Int64 {
        expiresAt * 1000 + (clockSkew + counterMargin).milliseconds
    }

    /// Kept beyond `exp + clock skew`, for clocks of gateways and store that disagree a little.
    public static let counterMargin = Duration.seconds(30)
}

/// The answer to a `consume`. Store failures are thrown (`StoreError`), never returned,
/// so no failure can be read as `.allowed`.
public enum ConsumeOutcome: Sendable, Hashable {
    /// The use was counted: this is use number `used` of `limit`.
    case allowed(used: Int, limit: Int)
    /// The proof's `jti` was already used for this trace; nothing was counted.
    case replayedProof
    /// Every use of the trace is spent; nothing was counted.
    case limitReached(limit: Int)
}

/// The answer to a `refund`.
public enum RefundOutcome: Sendable, Hashable {
    /// One use was given back.
    case refunded
    /// The counter exists but stands at zero; nothing to give back.
    case nothingUsed
    /// No counter for this trace (expired or never used).
    case unknownTrace
}

/// The answer to `takeRateLimitToken`.
public enum RateLimitOutcome: Sendable, Hashable {
    case allowed
    /// No token left; the next one is available after `retryAfter`.
    case limited(retryAfter: Duration)

    /// `Retry-After` in whole seconds, at least 1 (docs/spec/issuer.md); `nil` when allowed.
    public var retryAfterSeconds: Int? {
        guard case .limited(let retryAfter) = self else { return nil }
        return max(1, Int((retryAfter.milliseconds + 999) / 1000))
    }
}

/// Usage counters, replay caches and rate limits, shared by gateway and issuer replicas.
///
/// Every method is atomic. Errors are `StoreError`s; callers fail closed on them (the
/// gateway answers 503 `temporarily_unavailable` and forwards nothing).
public protocol UsageStore: Sendable {
    /// Checks the proof's `jti` against replays, creates the trace's counter on first use,
    /// and counts the use when the limit allows, in one atomic step.
    func consume(_ request: ConsumeRequest) async throws -> ConsumeOutcome

    /// Gives one use of `trace` back (the upstream could not be reached at all).
    func refund(trace: String) async throws -> RefundOutcome

    /// Takes one token from `identity`'s bucket of `ratePerMinute` tokens (that many
    /// in a burst, refilled continuously: GCRA).
    func takeRateLimitToken(identity: String, ratePerMinute: Int) async throws -> RateLimitOutcome

    /// Succeeds when the store can serve requests (readiness).
    func ping() async throws
}

extension Duration {
    /// Whole milliseconds, rounded up, so a positive duration never becomes zero.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}

extension ConsumeRequest {
    /// Rejects what would corrupt the key layout or the counter.
    func validate() throws(StoreError) {
        guard !self.trace.isEmpty, !self.trace.contains(where: { $0 == "{" || $0 == "}" }) else {
            throw StoreError(.invalidArgument, "trace \"\(self.trace)\" is empty or contains { or }; pass the token's trace claim")
        }
        guard self.limit >= 1 else {
            throw StoreError(.invalidArgument, "limit \(self.limit) is below 1; pass the token's cap.limit")
        }
        guard self.counterExpiresAtMilliseconds > 0, self.proofWindow > .zero else {
            throw StoreError(.invalidArgument, "the counter expiry and the proof window must be positive")
        }
    }
}

func validateRate(identity: String, ratePerMinute: Int) throws(StoreError) {
    guard !identity.isEmpty else { throw StoreError(.invalidArgument, "rate-limit identity is empty") }
    guard ratePerMinute >= 1 else {
        throw StoreError(.invalidArgument, "rate_per_minute \(ratePerMinute) is below 1; configure at least 1")
    }
}
