import AsyncHTTPClient
import EKeyConfig
@testable import EKeyGateway
import EKeyJWKS
import EKeyProtocol
import EKeyServer
import EKeyTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// A token whose signature verified once is not verified again, but nothing else about it is
/// taken on trust: the key under its `kid`, its claims and its binding are checked on every use.
@Suite(.serialized)
struct VerifiedTokenCacheTests {
    @Test func aCachedTokenIsStillCheckedForExpiryAudienceAndBearerDowngrade() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let clock = TestClock()
        try await harness.run(jwksMaxAge: .seconds(1)) { ports in
            let client = try InternalHTTPClient.make(caFile: harness.files.path("ca.crt"), certificateFile: nil, keyFile: nil)
            let keys = JWKSCache(
                url: "https://localhost:\(ports.publisher)/.well-known/jwks.json", client: client, logger: Logger(label: "test"), clock: clock)
            let step = TokenVerification(keys: keys, issuer: GatewayHarness.issuer, clockSkew: .seconds(5))
            let now = GatewayHarness.now
            let proofKey = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(proofKey, limit: 5, lifetime: 30, issuedAt: now)
            let route = Self.route(audience: GatewayHarness.audience)
            let dpop = TokenExtraction.Extracted(scheme: .dpop, token: token)

            #expect(try await step.verify(dpop, route: route, now: now).keyID == harness.keyID)
            #expect(step.verifiedTokens.count == 1)
            let single = try harness.dpopToken(proofKey, limit: 1, lifetime: 30, issuedAt: now)
            #expect(try await step.verify(.init(scheme: .dpop, token: single), route: route, now: now).claims.capability.limit == 1)
            #expect(step.verifiedTokens.count == 1, "a limit-1 token is verified but not kept: its first use is its only one")
            #expect(try await step.verify(dpop, route: route, now: now + 10).claims.capability.limit == 5)

            #expect(await Self.error(try await step.verify(dpop, route: route, now: now + 36)) == "expired_token", "exp is checked on every use")
            #expect(await Self.error(try await step.verify(dpop, route: Self.route(audience: "https://other.test"), now: now)) == "invalid_token",
                    "aud is the route's, checked on every use")
            #expect(await Self.error(try await step.verify(.init(scheme: .bearer, token: token), route: route, now: now)) == "invalid_token",
                    "a DPoP-bound token sent as Bearer is refused also once cached")
            #expect(await Self.error(try await step.verify(dpop, route: route, now: now - 60)) == "invalid_token", "iat in the future")
            #expect(step.verifiedTokens.count == 1, "rejections are never stored")

            var tampered = Array(token.utf8)
            tampered[tampered.count - 3] = tampered[tampered.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let forged = TokenExtraction.Extracted(scheme: .dpop, token: String(decoding: tampered, as: UTF8.self))
            #expect(await Self.error(try await step.verify(forged, route: route, now: now)) == "invalid_token", "another text is verified on its own")

            var rotated = try #require(try await ports.publishedKeys.all().first)
            rotated.jwk = PrivateSigningKey(generating: .es256).publicKey.jwk.with(keyID: harness.keyID, algorithm: .es256)
            #expect(try await ports.publishedKeys.replaceAll(with: [rotated], tombstones: []) == .imported(1))
            clock.advance(by: .milliseconds(1100))  // past the key set's max-age (1 s)
            #expect(await Self.error(try await step.verify(dpop, route: route, now: now)) == "invalid_token", "the key under its kid changed")
            #expect(step.verifiedTokens.count == 0, "and the token was forgotten")
            try await client.shutdown()
        }
    }

    /// A refusal after the signature verified (wrong audience, expired, Bearer downgrade)
    /// names the token, fresh or cached, so its audit event carries `sub`, `trace` and
    /// `cap_action`; a token whose signature failed names nothing.
    @Test func aRefusalAfterTheSignatureHeldCarriesTheTokensClaims() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        try await harness.run { ports in
            let client = try InternalHTTPClient.make(caFile: harness.files.path("ca.crt"), certificateFile: nil, keyFile: nil)
            let keys = JWKSCache(url: "https://localhost:\(ports.publisher)/.well-known/jwks.json", client: client, logger: Logger(label: "test"))
            let step = TokenVerification(keys: keys, issuer: GatewayHarness.issuer, clockSkew: .seconds(5))
            let now = GatewayHarness.now
            let proofKey = PrivateSigningKey(generating: .es256)
            let other = Self.route(audience: "https://other.test")
            for limit in [1, 5] {
                let token = try harness.dpopToken(proofKey, limit: limit, lifetime: 30, issuedAt: now)
                let dpop = TokenExtraction.Extracted(scheme: .dpop, token: token)
                if limit > 1 { _ = try await step.verify(dpop, route: Self.route(audience: GatewayHarness.audience), now: now) }
                for (name, route, at) in [("wrong audience", other, now), ("expired", Self.route(audience: GatewayHarness.audience), now + 60)] {
                    let rejection = await Self.rejection(try await step.verify(dpop, route: route, now: at))
                    #expect(rejection?.token?.subject == harness.workloadID, "\(name), limit \(limit): sub is known")
                    #expect(rejection?.token?.trace.count == 32, "\(name), limit \(limit): trace is known")
                    #expect(rejection?.token?.capability.action.description == "POST:/payments", "\(name), limit \(limit)")
                }
            }
            let forged = try harness.dpopToken(proofKey, issuedAt: now).dropLast(4) + "AAAA"
            let refused = await Self.rejection(try await step.verify(.init(scheme: .dpop, token: String(forged)), route: other, now: now))
            #expect(refused != nil && refused?.token == nil, "no claims are reported from a token whose signature failed")
            try await client.shutdown()
        }
    }

    static func rejection(_ body: @autoclosure () async throws -> VerifiedEKey) async -> Rejection? {
        do {
            _ = try await body()
            return nil
        } catch let rejection as Rejection {
            return rejection
        } catch {
            return nil
        }
    }

    /// A full cache drops expired tokens; when they are fewer than a quarter of it, it starts
    /// over instead, so inserts into a full cache do not each scan it.
    @Test func aFullCacheDropsExpiredTokensOrStartsOver() throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let now = GatewayHarness.now
        let jwk = PrivateSigningKey(generating: .es256).publicKey.jwk
        func entry(expiringIn lifetime: Int64) throws -> VerifiedTokenCache.Entry {
            let claims = try harness.claims(limit: 5, lifetime: lifetime + 30, issuedAt: now - 30, confirmation: .jwkThumbprint(jwk.thumbprint))
            return .init(jwk: jwk, keyID: harness.keyID, bind: .dpop, claims: claims)
        }
        let cache = VerifiedTokenCache(capacity: 8)
        for index in 0..<8 {
            try cache.insert(entry(expiringIn: index < 3 ? -10 : 60), for: "token-\(index)", now: now, clockSkew: 5)
        }
        #expect(cache.count == 8)
        try cache.insert(entry(expiringIn: 60), for: "token-8", now: now, clockSkew: 5)
        #expect(cache.count == 6, "three expired tokens (over a quarter) went, five stayed, one came")
        #expect(cache.entry(for: "token-0") == nil && cache.entry(for: "token-3") != nil)

        for index in 9..<11 {
            try cache.insert(entry(expiringIn: index == 9 ? -10 : 60), for: "token-\(index)", now: now, clockSkew: 5)
        }
        #expect(cache.count == 8)
        try cache.insert(entry(expiringIn: 60), for: "token-11", now: now, clockSkew: 5)
        #expect(cache.count == 1, "one expired token is under a quarter: the cache started over")
        #expect(cache.entry(for: "token-11") != nil)
    }

    @Test func aCachedTokenStopsWorkingWhenThePublisherRotatesOrRevokesItsKey() async throws {
        let harness = try GatewayHarness()
        defer { harness.files.remove() }
        let client = try harness.client()
        // The gateways' key-set clock: each advance by the max-age (1 s) makes their copy
        // stale, so the next call fetches the publisher's change.
        let clock = TestClock()
        try await harness.run(jwksMaxAge: .seconds(1), jwksClock: clock) { ports in
            let proofKey = PrivateSigningKey(generating: .es256)
            let token = try harness.dpopToken(proofKey, limit: 100)
            func call() async throws -> GatewayHarness.Answer {
                try await harness.send(
                    client, port: ports.gateways[0],
                    headers: [("Authorization", "DPoP \(token)"), ("DPoP", try harness.proof(proofKey, token: token))])
            }
            #expect(try await call().status == 201)
            #expect(try await call().status == 201)
            let original = try #require(try await ports.publishedKeys.all().first)

            var rotated = original
            rotated.jwk = PrivateSigningKey(generating: .es256).publicKey.jwk.with(keyID: harness.keyID, algorithm: .es256)
            #expect(try await ports.publishedKeys.replaceAll(with: [rotated], tombstones: []) == .imported(1))
            clock.advance(by: .seconds(1))
            let afterRotation = try await call()
            #expect(afterRotation.status == 401)
            #expect(afterRotation.error == "invalid_token", "another key under the same kid does not verify the cached token")

            var other = original
            other.keyID = "issuer-2"
            other.jwk = PrivateSigningKey(generating: .es256).publicKey.jwk.with(keyID: other.keyID, algorithm: .es256)
            // Two keys, so that revoking one leaves a set the gateway takes (it keeps its last
            // good set when the publisher serves an empty one).
            #expect(try await ports.publishedKeys.replaceAll(with: [original, other], tombstones: []) == .imported(2))
            clock.advance(by: .seconds(1))
            #expect(try await call().status == 201, "the restored key is accepted")
            let revokedAt = Int64(Date().timeIntervalSince1970)
            #expect(try await ports.publishedKeys.revoke(keyID: harness.keyID, at: revokedAt, forgetAfter: revokedAt + 60) != .unknown)
            clock.advance(by: .seconds(1))
            let afterRevocation = try await call()
            #expect(afterRevocation.status == 401)
            #expect(afterRevocation.error == "invalid_token", "a revoked kid ends the cached token")
            #expect(await harness.recorder.count >= 3)
        }
    }

    static func route(audience: String) -> Route {
        Route(
            RouteConfig(
                prefix: "/", upstream: URL(string: "http://127.0.0.1:1")!, audience: audience, publicOrigin: URL(string: audience)!,
                upstreamCA: nil, timeouts: .init()))
    }

    static func error(_ body: @autoclosure () async throws -> VerifiedEKey) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch let rejection as Rejection {
            return rejection.error.code.wireName
        } catch {
            return "\(error)"
        }
    }
}
