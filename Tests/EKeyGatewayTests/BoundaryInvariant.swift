import EKeyProtocol
import Testing

/// The gateway's boundary invariant, checked against a ``RecordingUpstream``: the upstream
/// parsed exactly the requests the gateway verified and answered 2xx through it, each with
/// the verified method and path and only gateway-made identity headers.
///
/// For every request the upstream parsed since a ``RecordingUpstream/Mark``:
/// - one per 2xx the gateway answered, in order (none when it answered 4xx/5xx itself);
/// - the verified method and target (`path?query`);
/// - `X-EKey-Sub`, `X-EKey-Trace`, `X-EKey-Action` and `X-EKey-Use` exactly once each, with
///   the token's subject, trace and action and a use `n/limit` within the token's limit;
/// - no other field whose name, lower-cased with `_` read as `-`, starts with `x-ekey-`;
/// - no `Authorization`, `DPoP` or method-override field (`X-HTTP-Method-Override`,
///   `X-HTTP-Method`, `X-Method-Override`, `X-Original-URL`, `X-Rewrite-URL`, also spelt with `_`);
/// - the body the client sent, when the case knows it;
/// - HTTP/1.1: explicit framing for any body, at most one `Content-Length`, never both
///   `Content-Length` and `Transfer-Encoding`;
/// - HTTP/2: the four request pseudo-header fields once each and before the others,
///   lower-case names, no connection-specific field, `te` only `trailers`, a
///   `content-length` equal to the DATA received.
///
/// And on the upstream as a whole: no parser failure since the mark, and no open connection
/// that received bytes since the mark holding bytes that do not make a whole request.
enum BoundaryInvariant {
    /// A request the gateway verified: what the upstream must see for it.
    struct Verified: Sendable {
        var method: String
        /// `path` or `path?query`, as verified.
        var target: String
        var subject: String
        var trace: String
        var action: String
        var limit: Int
        /// The body the client sent; `nil` when the test cannot tell (a mutated framing).
        var body: [UInt8]?

        init(method: String, target: String, subject: String, trace: String, action: String, limit: Int, body: [UInt8]?) {
            self.method = method
            self.target = target
            self.subject = subject
            self.trace = trace
            self.action = action
            self.limit = limit
            self.body = body
        }

        /// The request `method target` made with a token of these claims (its single action).
        init(method: String, target: String, claims: EKeyClaims, body: [UInt8]?) {
            self.init(
                method: method, target: target, subject: claims.subject, trace: claims.trace, action: claims.capability.action.description,
                limit: claims.capability.limit, body: body)
        }
    }

    static let identityHeaders = ["x-ekey-sub", "x-ekey-trace", "x-ekey-action", "x-ekey-use"]
    static let methodOverrideHeaders: Set<String> = ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url"]
    static let connectionSpecific: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]

    /// A field name lower-cased with `_` read as `-`, as CGI-style upstreams see it.
    static func normalized(_ name: String) -> String {
        String(name.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    /// Everything that breaks the invariant since `mark`, each as one sentence; empty when it holds.
    static func violations(of upstream: RecordingUpstream, since mark: RecordingUpstream.Mark, verified: [Verified]) -> [String] {
        var problems: [String] = []
        let requests = upstream.requests(since: mark)
        if requests.count != verified.count {
            problems.append(
                "upstream parsed \(requests.count) request(s), gateway verified and answered 2xx \(verified.count)"
                    + (requests.isEmpty ? "" : ": " + requests.map(\.description).joined(separator: " || ")))
        }
        for (request, expected) in zip(requests, verified) {
            problems += violations(of: request, expected: expected)
        }
        for request in requests.dropFirst(verified.count) {
            problems += identityViolations(request).map { "unverified \(request.method) \(request.target): \($0)" }
        }
        problems += upstream.failures(since: mark).map { "upstream parser failed: \($0)" }
        for connection in upstream.connections(since: mark) where !connection.closed && !connection.unparsed.isEmpty && connection.failure == nil {
            problems.append(
                "\(connection.unparsed.count) leftover byte(s) on open connection \(connection.index): \(StrictHTTP1Parser.quoted(connection.unparsed))")
        }
        return problems
    }

    /// What is wrong with one forwarded request.
    static func violations(of request: RecordedRequest, expected: Verified) -> [String] {
        var problems: [String] = []
        if request.method != expected.method {
            problems.append("method \(request.method), verified \(expected.method)")
        }
        if request.target != expected.target {
            problems.append("target \(request.target), verified \(expected.target)")
        }
        let wanted = [
            "x-ekey-sub": expected.subject, "x-ekey-trace": expected.trace, "x-ekey-action": expected.action,
        ]
        for name in identityHeaders {
            let values = request.headers.filter { $0.name.lowercased() == name }.map(\.value)
            guard values.count == 1 else {
                problems.append("\(name) present \(values.count) times: \(values)")
                continue
            }
            if let value = wanted[name], values[0] != value {
                problems.append("\(name) is \"\(values[0])\", the token says \"\(value)\"")
            }
            if name == "x-ekey-use" {
                let parts = values[0].split(separator: "/", omittingEmptySubsequences: false)
                let used = parts.count == 2 ? Int(parts[0]) : nil
                if parts.count != 2 || Int(parts[1]) != expected.limit || used.map({ !(1...expected.limit).contains($0) }) ?? true {
                    problems.append("x-ekey-use is \"\(values[0])\", not n/\(expected.limit)")
                }
            }
        }
        problems += identityViolations(request)
        if let body = expected.body, request.body != body {
            problems.append("body of \(request.body.count) bytes \(StrictHTTP1Parser.quoted(request.body)), client sent \(body.count) bytes")
        }
        return problems
    }

    /// The checks that hold for any request reaching the upstream, verified or not.
    static func identityViolations(_ request: RecordedRequest) -> [String] {
        var problems: [String] = []
        for (name, value) in request.headers {
            let lower = name.lowercased()
            let normal = normalized(name)
            if normal.hasPrefix("x-ekey-"), !identityHeaders.contains(lower) {
                problems.append("client-style identity header \(name): \(value) forwarded")
            }
            if lower == "authorization" || lower == "dpop" {
                problems.append("\(name) forwarded")
            }
            if methodOverrideHeaders.contains(normal) {
                problems.append("method-override header \(name): \(value) forwarded")
            }
        }
        if request.http2 {
            problems += http2Violations(request)
        } else {
            problems += http1Violations(request)
        }
        return problems
    }

    static func http1Violations(_ request: RecordedRequest) -> [String] {
        var problems: [String] = []
        let lengths = request.values("content-length")
        let codings = request.values("transfer-encoding")
        if lengths.count > 1 {
            problems.append("\(lengths.count) Content-Length fields")
        }
        if !lengths.isEmpty, !codings.isEmpty {
            problems.append("both Content-Length and Transfer-Encoding")
        }
        if !request.body.isEmpty, request.framing == .none {
            problems.append("a body without framing")
        }
        return problems
    }

    static func http2Violations(_ request: RecordedRequest) -> [String] {
        var problems: [String] = []
        let pseudoNames = request.pseudoHeaders.map(\.name)
        if pseudoNames.sorted() != [":authority", ":method", ":path", ":scheme"] {
            problems.append("pseudo-header fields \(pseudoNames)")
        }
        if let firstRegular = request.headerBlock.firstIndex(where: { !$0.name.hasPrefix(":") }),
            request.headerBlock[firstRegular...].contains(where: { $0.name.hasPrefix(":") })
        {
            problems.append("a pseudo-header field after a regular one")
        }
        for (name, value) in request.headers {
            if name != name.lowercased() {
                problems.append("upper-case field name \(name)")
            }
            if connectionSpecific.contains(name.lowercased()) {
                problems.append("connection-specific field \(name): \(value)")
            }
            if name.lowercased() == "te", value.lowercased() != "trailers" {
                problems.append("te: \(value)")
            }
        }
        let lengths = request.values("content-length")
        if lengths.count > 1 || lengths.first.map({ Int($0) != request.body.count }) ?? false {
            problems.append("content-length \(lengths) with \(request.body.count) bytes of DATA")
        }
        return problems
    }

    /// Records an issue for each violation, prefixed by `context`, and returns the violations.
    @discardableResult
    static func expect(
        _ upstream: RecordingUpstream, since mark: RecordingUpstream.Mark, verified: [Verified], _ context: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [String] {
        let problems = violations(of: upstream, since: mark, verified: verified)
        for problem in problems {
            Issue.record("\(context): \(problem)", sourceLocation: sourceLocation)
        }
        return problems
    }
}
