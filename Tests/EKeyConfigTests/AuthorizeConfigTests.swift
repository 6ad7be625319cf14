import EKeyConfig
import XCTest

/// `gateway.authorize`: off when absent, its own listener, plaintext only on loopback, and
/// every `trusted_clients` entry an identity or an address range that can match.
final class AuthorizeConfigTests: XCTestCase {
    func testAbsentMeansOff() throws {
        XCTAssertNil(try load(minimalGateway).config.gateway?.authorize)
    }

    func testAValidBlock() throws {
        let yaml = minimalGateway + """

              authorize:
                listen: 127.0.0.1:9555
                tls: none
                trusted_clients: ["127.0.0.1/32", "::1", "10.1.0.0/16"]
                path_prefix: /ext_authz/
            """
        let authorize = try XCTUnwrap(try load(yaml).config.gateway?.authorize)
        XCTAssertEqual(authorize.listen, ListenAddress(host: "127.0.0.1", port: 9555))
        XCTAssertEqual(authorize.tls, .none)
        XCTAssertEqual(authorize.pathPrefix, "/ext_authz", "a trailing / is dropped")
        XCTAssertEqual(authorize.trustedClients.map(\.description), ["127.0.0.1/32", "::1/128", "10.1.0.0/16"])
        XCTAssertNil(authorize.grpcListen, "the gRPC Check service is off unless grpc_listen is set")
    }

    func testGRPCListenIsReadAndNeedsItsOwnAddress() throws {
        let yaml = minimalGateway + "\n  authorize: {tls: none, grpc_listen: 127.0.0.1:9445, trusted_clients: [\"127.0.0.1/32\"]}"
        XCTAssertEqual(try load(yaml).config.gateway?.authorize?.grpcListen, ListenAddress(host: "127.0.0.1", port: 9445))
        let same = minimalGateway + "\n  authorize: {listen: 127.0.0.1:9444, tls: none, grpc_listen: 127.0.0.1:9444, trusted_clients: [\"127.0.0.1/32\"]}"
        assertError(loadErrors(same), at: "gateway.authorize.grpc_listen", contains: "its own address")
    }

    func testTheDefaultListenerIsLoopback9444() throws {
        let yaml = minimalGateway + "\n  authorize: {tls: none, trusted_clients: [\"127.0.0.1/32\"]}"
        XCTAssertEqual(try load(yaml).config.gateway?.authorize?.listen, ListenAddress(host: "127.0.0.1", port: 9444))
    }

    func testEachMistakeIsNamedWithItsFix() {
        let yaml = minimalGateway + """

              authorize:
                listen: 0.0.0.0:9444
                tls: none
                grpc_listen: 0.0.0.0:9445
                trusted_clients: ["spiffe://example.org/edge", "envoy", "10.0.0.0/33"]
                path_prefix: ext_authz
            """
        let errors = loadErrors(yaml)
        assertError(errors, at: "gateway.authorize.tls", contains: "only on a loopback listen address")
        assertError(errors, at: "gateway.authorize.grpc_listen", contains: "plaintext gRPC is allowed only on loopback")
        assertError(errors, at: "gateway.authorize.trusted_clients.1", contains: "\"envoy\" is neither an identity")
        assertError(errors, at: "gateway.authorize.trusted_clients.2", contains: "address range")
        assertError(errors, at: "gateway.authorize.trusted_clients", contains: "asks for no client certificate")
        assertError(errors, at: "gateway.authorize.path_prefix", contains: "starting with /")
    }

    func testTheListenerIsNeverThePublicOneAndSomeoneIsTrusted() {
        let yaml = minimalGateway + "\n  listen: 127.0.0.1:9443\n  authorize: {listen: 127.0.0.1:9443, tls: none, trusted_clients: []}"
        let errors = loadErrors(yaml)
        assertError(errors, at: "gateway.authorize.listen", contains: "its own address")
        assertError(errors, at: "gateway.authorize.trusted_clients", contains: "at least one")
        assertError(loadErrors(minimalGateway + "\n  authorize: {tls: none}"), at: "gateway.authorize.trusted_clients", contains: "is required")
    }

    func testTrustedClientMatching() throws {
        let loopback = try XCTUnwrap(TrustedClient(parsing: "127.0.0.0/8"))
        XCTAssertTrue(loopback.admits(identity: nil, address: "127.9.9.9"))
        XCTAssertTrue(loopback.admits(identity: nil, address: "::ffff:127.0.0.1"), "an IPv4 peer on a dual-stack socket")
        XCTAssertFalse(loopback.admits(identity: nil, address: "128.0.0.1"))
        XCTAssertFalse(loopback.admits(identity: nil, address: nil))
        let odd = try XCTUnwrap(TrustedClient(parsing: "10.0.0.0/9"))
        XCTAssertTrue(odd.admits(identity: nil, address: "10.127.255.255"))
        XCTAssertFalse(odd.admits(identity: nil, address: "10.128.0.0"))
        let v6 = try XCTUnwrap(TrustedClient(parsing: "fd00::/8"))
        XCTAssertTrue(v6.admits(identity: nil, address: "fd12::1"))
        XCTAssertFalse(v6.admits(identity: nil, address: "fe80::1"))
        XCTAssertFalse(v6.admits(identity: nil, address: "10.0.0.1"))
        let envoy = try XCTUnwrap(TrustedClient(parsing: "spiffe://example.org/edge/envoy"))
        XCTAssertTrue(envoy.admits(identity: "spiffe://example.org/edge/envoy", address: "10.0.0.1"))
        XCTAssertFalse(envoy.admits(identity: "spiffe://example.org/edge/envoy2", address: "10.0.0.1"))
        XCTAssertFalse(envoy.admits(identity: nil, address: "spiffe://example.org/edge/envoy"))
        for bad in ["", "spiffe://", "x509:", "10.0.0.0/", "10.0.0.0/-1", "1.2.3", "envoy"] {
            XCTAssertNil(TrustedClient(parsing: bad), bad)
        }
    }
}
