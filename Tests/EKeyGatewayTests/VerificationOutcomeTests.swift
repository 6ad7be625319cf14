@testable import EKeyGateway
import EKeyProtocol
import Foundation
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
}
