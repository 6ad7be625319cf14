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
        /// Reads the connection's TLS client identity; only called for mTLS-bound tokens.
        public var peer: @Sendable () async -> PeerIdentity?

        /// Creates a request description.
        public init(
            method: String, target: String, authorization: [String], dpop: [String], contentLength: [String] = [], transferEncoding: [String] = [],
            peer: @escaping @Sendable () async -> PeerIdentity?
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

    /// Runs steps 0-5 at `nowMilliseconds` (epoch milliseconds); throws the first step's ``Rejection``.
    public func verify(_ request: Incoming, nowMilliseconds: Int64) async throws(Rejection) -> Verified {
        let now = nowMilliseconds / 1000
        let (target, route) = try await step("verify.path") { () throws(Rejection) in
            try RequestFraming.check(contentLength: request.contentLength, transferEncoding: request.transferEncoding)
            return try PathCheck.check(target: request.target, routes: routes)
        }
        let extracted = try await step("verify.token_extraction") { () throws(Rejection) in
            try TokenExtraction.extract(authorization: request.authorization)
        }
        let token = try await step("verify.token") { () async throws(Rejection) in
            try await tokens.verify(extracted, route: route, now: now)
        }
        let peer = token.binding.mode == .mtls ? await request.peer() : nil
        let evidence = try await step("verify.binding") { () throws(Rejection) in
            try binding.verify(
                token, compact: extracted.token, scheme: extracted.scheme, method: request.method, path: target.path, route: route,
                dpopHeaders: request.dpop, peer: peer, nowMilliseconds: nowMilliseconds)
        }
        let action = try await step("verify.capability") { () throws(Rejection) in
            try CapabilityCheck.check(token, method: request.method, target: target, scheme: extracted.scheme)
        }
        let jti: String?
        if case .proof(let proof) = evidence {
            jti = proof.jti
        } else {
            jti = nil
        }
        let (used, limit) = try await step("verify.usage") { () async throws(Rejection) in
            try await usage.consume(token, jti: jti, scheme: extracted.scheme)
        }
        return Verified(route: route, target: target, token: token, scheme: extracted.scheme, action: action, used: used, limit: limit)
    }

    /// Runs one step, as a child span of the request's when tracing is on (named after the
    /// step; a refusal marks it an error with its audit outcome, never a token or proof).
    @inline(__always)
    private func step<Result>(_ name: String, _ body: () async throws(Rejection) -> Result) async throws(Rejection) -> Result {
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
