import AsyncHTTPClient
import EKeyConfig
@testable import EKeyGateway
import EKeyProtocol
import EKeyTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The gateway's outcomes are a contract (docs/spec/observability.md): their wire values are
/// read from the spec itself, so renaming a case, or adding one the spec does not list, fails.
struct VerificationOutcomeTests {
    /// docs/spec/observability.md, found from this file's place in the package.
    static let observabilitySpec = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/spec/observability.md")

    /// The back-quoted names in the spec's row for the `verify` event, in order.
    static func specifiedVerifyOutcomes() throws -> [String] {
        let spec = try String(contentsOf: observabilitySpec, encoding: .utf8)
        let row = try #require(spec.split(separator: "\n").first { $0.hasPrefix("| `verify` |") })
        let outcomes = try #require(row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.last)
        return outcomes.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    @Test func everyOutcomeHasTheWireValueTheSpecLists() throws {
        let specified = try Self.specifiedVerifyOutcomes()
        #expect(specified.count == 10)
        #expect(VerificationOutcome.allCases.map(\.rawValue) == specified)
    }

    @Test func theOutcomesCountedOnTheirOwnUseTheSpecsCounters() throws {
        let spec = try String(contentsOf: Self.observabilitySpec, encoding: .utf8)
        let counted = VerificationOutcome.allCases.compactMap { outcome in outcome.dedicatedCounter.map { (outcome, $0) } }
        #expect(counted.map { $0.0 } == [.invalidProof, .replayBlocked])
        for (_, counter) in counted {
            #expect(spec.contains("`\(counter)`"), "\(counter) is not in docs/spec/observability.md")
        }
    }

    @Test func aProtocolErrorIsRefusedUnderTheOutcomeOfItsCode() {
        let expected: [EKeyError.Code: VerificationOutcome] = [
            .invalidRequest: .invalidRequest, .invalidToken: .invalidToken, .expiredToken: .expired, .invalidProof: .invalidProof,
            .replayDetected: .replayBlocked, .useDPoPNonce: .nonceRequired, .capabilityMismatch: .capabilityMismatch,
            .temporarilyUnavailable: .storeUnavailable, .badGateway: .invalidToken, .gatewayTimeout: .invalidToken,
            .invalidClient: .invalidToken, .accessDenied: .invalidToken, .rateLimited: .invalidToken, .keyRevoked: .invalidToken,
        ]
        for code in EKeyError.Code.all {
            #expect(VerificationOutcome(refusing: EKeyError(code, "test")) == expected[code], "\(code)")
        }
    }

    static let httpsRoute = Route(
        RouteConfig(prefix: "/", upstream: URL(string: "https://127.0.0.1:9")!, audience: "https://api.example", publicOrigin: URL(string: "https://api.example")!))

    /// What AsyncHTTPClient throws for an `https://` upstream that refuses every connection
    /// (the pool's last connection failure), and how it is classified: a host name is
    /// connected by NIO's Happy Eyeballs (`NIOConnectionError`), an IP address directly
    /// (`IOError`).
    @Test(arguments: ["localhost", "127.0.0.1"])
    func anHTTPSUpstreamThatRefusesTheConnectionGives502AndTheUseBack(host: String) async throws {
        let port = try FreePort.pick()
        let client = HTTPClient(
            eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton),
            configuration: .init(tlsConfiguration: .makeClientConfiguration(), timeout: .init(connect: .seconds(5))))
        var caught: (any Error)?
        do {
            _ = try await client.execute(HTTPClientRequest(url: "https://\(host):\(port)/"), timeout: .seconds(10))
        } catch {
            caught = error
        }
        try await client.shutdown()
        let error = try #require(caught)
        if host == "localhost" {
            #expect(error is NIOConnectionError, "\(type(of: error)): \(error)")
        } else {
            #expect((error as? IOError)?.errnoCode == ECONNREFUSED, "\(type(of: error)): \(error)")
        }
        let failure = Forwarder.classify(error, route: Self.httpsRoute)
        #expect(failure.error.code == .badGateway && failure.nothingSent, "\(failure.error)")
        #expect(failure.error.reason == "the upstream https://127.0.0.1:9 refused the connection")
    }

    @Test func anHTTPSClientErrorIsClassifiedByItsCase() {
        let cases: [(any Error, EKeyError.Code, Bool)] = [
            (HTTPClientError.connectTimeout, .gatewayTimeout, true),
            (ChannelError.connectTimeout(.seconds(2)), .gatewayTimeout, true),
            (HTTPClientError.readTimeout, .gatewayTimeout, false),
            (HTTPClientError.deadlineExceeded, .gatewayTimeout, false),
            (HTTPClientError.remoteConnectionClosed, .badGateway, false),
            (IOError(errnoCode: ECONNREFUSED, reason: "connect"), .badGateway, true),
            (IOError(errnoCode: ECONNRESET, reason: "read"), .badGateway, false),
            (NIOSSLError.handshakeFailed(.syscallError), .badGateway, true),
            (ChannelError.connectPending, .badGateway, false),
            (ChannelError.eof, .badGateway, false),
        ]
        for (error, code, nothingSent) in cases {
            let failure = Forwarder.classify(error, route: Self.httpsRoute)
            #expect(failure.error.code == code && failure.nothingSent == nothingSent, "\(error) -> \(failure.error), nothing sent: \(failure.nothingSent)")
        }
    }
}
