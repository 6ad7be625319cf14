import EKeyConfig
import EKeyIssuer
import EKeyProtocol
import EKeyServer
import EKeyStore
import Logging
import Testing

/// ``ClientAuthenticator`` with a registered DPoP key over the in-memory store: how
/// `issuer.clock_skew` bounds a proof's `iat` (counted in whole seconds, at least one, as
/// proof times are whole epoch seconds), and that a proof is spent at its first use.
struct ClientAuthenticatorTests {
    static let endpoint = "https://issuer.example.com/token"
    let key = PrivateSigningKey(generating: .es256)
    let now = WallClock.epochSeconds()

    func authenticator(skew: Duration) throws -> ClientAuthenticator {
        ClientAuthenticator(
            tokenEndpoint: Self.endpoint, clockSkew: skew, clients: [ClientConfig(id: "ci-bot", jkt: key.jwk.thumbprint)],
            identityProviders: try IdentityProviders([], logger: Logger(label: "test")), store: MemoryStore(), metrics: MetricsRegistry())
    }

    func authenticate(_ authenticator: ClientAuthenticator, proofIssuedAt issuedAt: Int64) async throws -> AuthenticatedClient {
        let proof = try DPoPProof(method: "POST", url: Self.endpoint, issuedAt: issuedAt).signed(with: key)
        return try await authenticator.authenticate(peer: nil, proofs: [proof], subjectToken: nil, now: now)
    }

    /// 500 ms counts as 1 s (a proof made in the previous second passes) and 1999 ms as
    /// 1 s too (a proof two seconds old does not).
    @Test(arguments: [Duration.milliseconds(500), .seconds(1), .milliseconds(1999)])
    func theSkewCountsWholeSecondsAndAtLeastOne(skew: Duration) async throws {
        let authenticator = try authenticator(skew: skew)
        #expect(try await authenticate(authenticator, proofIssuedAt: now - 1).identity == "client:ci-bot")
        await #expect(throws: EKeyError.self) { try await authenticate(authenticator, proofIssuedAt: now - 2) }
    }

    @Test func aProofIsSpentAtItsFirstUse() async throws {
        let authenticator = try authenticator(skew: .seconds(5))
        let proof = try DPoPProof(method: "POST", url: Self.endpoint, issuedAt: now).signed(with: key)
        _ = try await authenticator.authenticate(peer: nil, proofs: [proof], subjectToken: nil, now: now)
        await #expect(throws: EKeyError.self) {
            try await authenticator.authenticate(peer: nil, proofs: [proof], subjectToken: nil, now: now)
        }
    }
}
