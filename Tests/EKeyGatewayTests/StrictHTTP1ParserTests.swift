import Testing

/// The recording upstream's own HTTP/1.1 parser and the boundary invariant, on bytes and
/// records made by hand: what they accept, what they refuse, and what they report.
struct StrictHTTP1ParserTests {
    static func bytes(_ text: String) -> ArraySlice<UInt8> { Array(text.utf8)[...] }

    @Test func parsesFramingsAndPipelinedRequests() throws {
        let text = "GET /a HTTP/1.1\r\nHost: x\r\nX-A:  one two \t\r\n\r\n"
            + "POST /b?q=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
        var rest = Self.bytes(text)
        var parsed: [StrictHTTP1Parser.Request] = []
        while !rest.isEmpty, let (request, consumed) = try StrictHTTP1Parser.parse(rest) {
            parsed.append(request)
            rest = rest.dropFirst(consumed)
        }
        #expect(rest.isEmpty)
        try #require(parsed.count == 3)
        #expect(parsed[0].method == "GET" && parsed[0].target == "/a" && parsed[0].framing == .none && parsed[0].body.isEmpty)
        #expect(parsed[0].headers.map(\.value) == ["x", "one two"])
        #expect(parsed[1].target == "/b?q=1" && parsed[1].framing == .contentLength(5) && parsed[1].body == Array("hello".utf8))
        #expect(parsed[2].framing == .chunked && parsed[2].body == Array("abcde".utf8) && parsed[2].trailers.map(\.name) == ["X-Trailer"])
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: x\r\n", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "GET / HTTP/1.1\r",
    ])
    func waitsForTheRestOfAnIncompleteRequest(text: String) throws {
        #expect(try StrictHTTP1Parser.parse(Self.bytes(text)) == nil)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF"),
        ("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", "bare CR"),
        ("\r\nGET / HTTP/1.1\r\n\r\n", "empty line"),
        ("GET  / HTTP/1.1\r\n\r\n", "request line"),
        ("GET / HTTP/2.0\r\n\r\n", "version"),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "not a token"),
        ("GET / HTTP/1.1\r\nX_A: x\r\n X-B: y\r\n\r\n", "obs-fold"),
        ("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n", "control byte"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "2 Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", "not one decimal"),
        ("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", "not one decimal"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "not 'chunked' alone"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "not 'chunked' alone"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n\r\n", "not hexadecimal"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "not followed by CRLF"),
    ])
    func refusesWhatRFC9112LetsARecipientRefuse(text: String, reason: String) {
        #expect {
            _ = try StrictHTTP1Parser.parse(Self.bytes(text))
        } throws: { error in
            (error as? StrictHTTP1Parser.Failure)?.description.contains(reason) ?? false
        }
    }

    static func forwarded(_ extra: [(String, String)] = [], body: [UInt8] = [], framing: UpstreamFraming = .none) -> RecordedRequest {
        let headers = [("X-EKey-Sub", "spiffe://a"), ("X-EKey-Trace", "t1"), ("X-EKey-Action", "GET:/p"), ("X-EKey-Use", "1/5")] + extra
        return RecordedRequest(
            sequence: 0, connection: 0, http2: false, method: "GET", target: "/p", headers: headers.map { (name: $0.0, value: $0.1) }, pseudoHeaders: [],
            headerBlock: [], body: body, framing: framing)
    }

    static let verified = BoundaryInvariant.Verified(method: "GET", target: "/p", subject: "spiffe://a", trace: "t1", action: "GET:/p", limit: 5, body: [])

    @Test func theInvariantHoldsForTheGatewaysOwnHeaders() {
        #expect(BoundaryInvariant.violations(of: Self.forwarded([("Accept", "*/*")]), expected: Self.verified).isEmpty)
    }

    @Test(arguments: [
        ([("X_EKey_Sub", "attacker")], "X_EKey_Sub"),
        ([("x-ekey-sub", "attacker")], "x-ekey-sub present 2 times"),
        ([("X-EKey-Admin", "1")], "X-EKey-Admin"),
        ([("Authorization", "DPoP x")], "Authorization forwarded"),
        ([("X-HTTP-Method-Override", "DELETE")], "method-override"),
        ([("X_Original_URL", "/admin")], "method-override"),
        ([("Content-Length", "1"), ("Content-Length", "1")], "2 Content-Length"),
        ([("Content-Length", "1"), ("Transfer-Encoding", "chunked")], "both Content-Length and Transfer-Encoding"),
    ])
    func theInvariantNamesEachBreach(extra: [(String, String)], breach: String) {
        let problems = BoundaryInvariant.violations(of: Self.forwarded(extra), expected: Self.verified)
        #expect(problems.contains { $0.contains(breach) }, "\(problems)")
    }

    @Test func theInvariantComparesMethodTargetIdentityAndBody() {
        var request = Self.forwarded(body: Array("x".utf8), framing: .contentLength(1))
        request.method = "DELETE"
        request.target = "/admin"
        request.headers[3].value = "9/5"
        let problems = BoundaryInvariant.violations(of: request, expected: Self.verified)
        for expected in ["method DELETE", "target /admin", "x-ekey-use", "body of 1 bytes"] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) in \(problems)")
        }
    }
}
