import EKeyGateway
import HTTPTypes
import Testing

/// The header rules of docs/spec/gateway.md step 6 on their own: what goes back downstream and the
/// gateway's `Forwarded` element.
struct HeaderPolicyTests {
    @Test func responseLosesHopByHopAndConnectionNamedHeadersInAnyCase() {
        let fields = HeaderPolicy.downstreamHeaders(from: [
            ("X-Before", "named before Connection"), ("Content-Type", "application/json"), ("CONNECTION", "x-before, X-After ,close"),
            ("Keep-Alive", "timeout=5"), ("transfer-encoding", "chunked"), ("Upgrade", "h2c"), ("Proxy-Connection", "keep-alive"),
            ("X-After", "named after"), ("X-Request-Id", "r-1"), ("bad name", "dropped"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"),
        ])
        #expect(fields.map(\.name.canonicalName) == ["content-type", "x-request-id", "set-cookie", "set-cookie"])
        #expect(fields.map(\.value) == ["application/json", "r-1", "a=1", "b=2"])
        #expect(fields.first?.name.rawName == "Content-Type", "names keep the upstream's spelling")
    }

    @Test func responseWithoutConnectionHeaderKeepsEverythingElse() {
        let pairs: [(name: String, value: String)] = [("Content-Length", "11"), ("ETag", "\"v1\""), ("Cache-Control", "no-store")]
        let fields = HeaderPolicy.downstreamHeaders(from: pairs)
        #expect(fields.map(\.name.rawName) == pairs.map(\.name))
    }

    static func fields(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return fields
    }

    @Test func requestLosesIdentityHeadersSpelledWithUnderscoresOrAnyCase() {
        let kept = HeaderPolicy.upstreamHeaders(from: Self.fields([
            ("X_EKey_Sub", "admin"), ("x-ekey-trace", "t"), ("X-EKEY_Use", "1/1"), ("X_Forwarded_For", "10.0.0.1"), ("x-forwarded-host", "h"),
            ("Forwarded", "for=1.2.3.4"), ("Authorization", "DPoP x"), ("dpop", "p"), ("Host", "evil"), ("X_Request_Id", "r-1"),
        ]))
        #expect(kept.map(\.0) == ["X_Request_Id"], "only the unrelated header is left: \(kept)")
    }

    @Test(arguments: ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "x_http_method_override", "X_ORIGINAL_URL"])
    func requestLosesMethodAndURLOverrides(name: String) {
        let kept = HeaderPolicy.upstreamHeaders(from: Self.fields([(name, "DELETE"), ("Accept", "*/*")]))
        #expect(kept.map(\.0) == ["Accept"])
    }

    @Test func requestFramingHeadersAreAlwaysTheGatewaysOwn() {
        let kept = HeaderPolicy.upstreamHeaders(from: Self.fields([
            ("Content-Length", "44"), ("Transfer-Encoding", "chunked"), ("Connection", "content-length, transfer-encoding, host, x-ekey-sub, x_trace, keep-alive"),
            ("X-Trace", "named by Connection with '_'"), ("TE", "trailers"), ("Accept", "*/*"),
        ]))
        #expect(kept.map(\.0) == ["Accept"], "framing and hop-by-hop headers never pass, Connection-named ones neither: \(kept)")
    }

    @Test func forwardedQuotesIPv6AndKeepsOnlyPlainASCIIHosts() {
        #expect(HeaderPolicy.forwarded(clientAddress: "192.0.2.7", host: "api.example.com:8443", proto: "https")
            == "for=192.0.2.7;host=\"api.example.com:8443\";proto=https")
        #expect(HeaderPolicy.forwarded(clientAddress: "2001:db8::1", host: "[2001:db8::2]:443", proto: "https")
            == "for=\"[2001:db8::1]\";host=\"[2001:db8::2]:443\";proto=https")
        for hostile in ["exämple.com", "a\"b", "a;for=evil", "a,b", "a b", "", "١٢٣.example"] {
            #expect(HeaderPolicy.forwarded(clientAddress: nil, host: hostile, proto: "https") == "proto=https", "host \(hostile.debugDescription) left out")
        }
    }
}
