import Tracing
public import EKeyProtocol
public import EKeyServer

/// The verification steps of docs/spec/gateway.md, run in order (step 0 also refuses ambiguous
/// framing, ``RequestFraming``). Nothing is counted in the store
/// before the token, the binding and the capability all hold.
public struct RequestVerifier: Sendable {
    /// What the verifier needs from a request.
    public struct Incoming: Sendable {
        public var method: String
        /// The request target exactly as sent (`/path?query`).
        public var target: String
        public var authorization: [String]
        public var dpop: [String]
        /// Every `Content-Length` field value.
        public var contentLength: [String]
        /// Every `Transfer-Encoding` field value.
        public var transferEncoding: [String]
        /// The connection's TLS client identity (read for mTLS-bound tokens only).
        public var peer: PeerIdentity?

        /// Creates a request description.
        public init(
            method: String, target: String, authorization: [String], dpop: [String], contentLength: [String] = [], transferEncoding: [String] = [],
            peer: PeerIdentity?
        ) {
            self.method = method
            self.target = target
            self.authorization = authorization
            self.dpop = dpop
            self.contentLength = contentLength
            self.transferEncoding = transferEncoding
            self.peer = peer
        }
    }

    /// A request that may be forwarded.
    public struct Verified: Sendable {
        public let route: Route
        public let target: RequestTarget
        public let token: VerifiedEKey
        public let scheme: AuthorizationScheme
        /// The capability entry that matched, as written in the token.
        public let action: CapabilityAction
        public let used: Int
        public let limit: Int
    }

    let routes: RouteTable

    /// The `route` label of a request's metrics: the prefix of the route serving `target`'s
    /// path, `none` when no route does (a bounded label set: one value per route, plus one).
    func routeLabel(for target: String) -> String {
        routes.route(for: String(target.prefix { $0 != "?" }))?.prefix ?? "none"
    }
    let tokens: TokenVerification
    let binding: BindingVerification
    let usage: UsageAccounting

    /// Creates the verifier from its steps.
    public init(routes: RouteTable, tokens: TokenVerification, binding: BindingVerification, usage: UsageAccounting) {
        self.routes = routes
        self.tokens = tokens
        self.binding = binding
        self.usage = usage
    }

    /// A request that passed steps 0-4 (everything but the use count).
    public struct Checked: Sendable {
        public let route: Route
        public let target: RequestTarget
        public let token: VerifiedEKey
        public let scheme: AuthorizationScheme
        public let action: CapabilityAction
        /// The DPoP proof's `jti`, remembered by step 5; `nil` for an mTLS-bound token.
        public let jti: String?
    }

    /// What ``check(_:nowMilliseconds:key:keyNeededIsFinal:)`` found.
    public enum Screening: Sendable {
        /// Steps 0-4 hold.
        case checked(Checked)
        /// Step 2 needs the publisher's key for this `kid`, not at hand: read the key set first.
        case keyNeeded(String)
    }

    /// Runs steps 0-5 at `nowMilliseconds` (epoch milliseconds); throws the first step's ``Rejection``.
    public func verify(_ request: Incoming, nowMilliseconds: Int64) async throws(Rejection) -> Verified {
        var screening = try check(request, nowMilliseconds: nowMilliseconds, key: tokens.keys.freshKey(forKeyID:))
        if case .keyNeeded(let keyID) = screening {
            let jwk = await tokens.keys.key(forKeyID: keyID)
            screening = try check(request, nowMilliseconds: nowMilliseconds, key: { $0 == keyID ? jwk : nil }, keyNeededIsFinal: true)
        }
        guard case .checked(let checked) = screening else {
            preconditionFailure("a final check either rejects or passes")
        }
        return try await account(checked)
    }

    /// Steps 0-4, which need no I/O: the event loop runs them as the request's head
    /// arrives. `key` gives the publisher's key for a `kid` when it is at hand; without it
    /// the answer is ``Screening/keyNeeded(_:)`` (or, when `keyNeededIsFinal`, the
    /// unknown-`kid` rejection).
    public func check(
        _ request: Incoming, nowMilliseconds: Int64, key: (String) -> JWK?, keyNeededIsFinal: Bool = false
    ) throws(Rejection) -> Screening {
        let now = nowMilliseconds / 1000
        let (target, route) = try step("verify.path") { () throws(Rejection) in
            try RequestFraming.check(contentLength: request.contentLength, transferEncoding: request.transferEncoding)
            return try PathCheck.check(target: request.target, routes: routes)
        }
        let extracted = try step("verify.token_extraction") { () throws(Rejection) in
            try TokenExtraction.extract(authorization: request.authorization)
        }
        let tokenCheck = try step("verify.token") { () throws(Rejection) in
            try tokens.check(extracted, route: route, now: now, key: key, keyNeededIsFinal: keyNeededIsFinal)
        }
        let token: VerifiedEKey
        switch tokenCheck {
        case .verified(let verified): token = verified
        case .keyNeeded(let keyID): return .keyNeeded(keyID)
        }
        let evidence = try step("verify.binding") { () throws(Rejection) in
            try binding.verify(
                token, compact: extracted.token, scheme: extracted.scheme, method: request.method, path: target.path, route: route,
                dpopHeaders: request.dpop, peer: token.binding.mode == .mtls ? request.peer : nil, nowMilliseconds: nowMilliseconds)
        }
        let action = try step("verify.capability") { () throws(Rejection) in
            try CapabilityCheck.check(token, method: request.method, target: target, scheme: extracted.scheme)
        }
        let jti: String?
        if case .proof(let proof) = evidence {
            jti = proof.jti
        } else {
            jti = nil
        }
        return .checked(Checked(route: route, target: target, token: token, scheme: extracted.scheme, action: action, jti: jti))
    }

    /// Step 5: counts the use and remembers the proof's `jti`, in one store call.
    public func account(_ checked: Checked) async throws(Rejection) -> Verified {
        let (used, limit) = try await asyncStep("verify.usage") { () async throws(Rejection) in
            try await usage.consume(checked.token, jti: checked.jti, scheme: checked.scheme)
        }
        return Verified(
            route: checked.route, target: checked.target, token: checked.token, scheme: checked.scheme, action: checked.action, used: used,
            limit: limit)
    }

    /// Runs one step, as a child span of the request's when tracing is on (named after the
    /// step; a refusal marks it an error with its audit outcome, never a token or proof).
    @inline(__always)
    private func step<Result>(_ name: String, _ body: () throws(Rejection) -> Result) throws(Rejection) -> Result {
        guard ServiceTracing.isEnabled else { return try body() }
        let span = startSpan(name, context: ServiceContext.current ?? .topLevel)
        defer { span.end() }
        do {
            return try body()
        } catch {
            span.setStatus(.init(code: .error))
            span.attributes["ekey.outcome"] = error.outcome.rawValue
            throw error
        }
    }

    /// ``step(_:_:)`` for a step that waits.
    @inline(__always)
    private func asyncStep<Result>(_ name: String, _ body: () async throws(Rejection) -> Result) async throws(Rejection) -> Result {
        guard ServiceTracing.isEnabled else { return try await body() }
        let span = startSpan(name, context: ServiceContext.current ?? .topLevel)
        defer { span.end() }
        do {
            return try await body()
        } catch {
            span.setStatus(.init(code: .error))
            span.attributes["ekey.outcome"] = error.outcome.rawValue
            throw error
        }
    }
}
