import ArgumentParser
import EKeyProtocol
import Foundation
import JWTKit

/// `ekey-bench`: single-core verification throughput of the protocol module, and the same
/// token verified through vapor/jwt-kit, to ground the choice of JWS core (docs/jws-core.md).
///
/// Run through `loadtest/verify-bench`, which also measures `openssl speed ecdsap256` in
/// the same run so the figures can be read as ratios.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-bench",
        abstract: "Measure E-Key token and DPoP proof verification per core."
    )

    @Option(help: "Seconds to run each case.")
    var seconds: Double = 2

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Run only the cases whose name contains this text.")
    var only: String?

    @Option(help: "Rounds; the cases are interleaved in each round and the median is reported, as this host's speed drifts.")
    var rounds = 3

    func run() async throws {
        var cases: [(String, () async throws -> Double)] = []
        for algorithm in JWSAlgorithm.allCases {
            let setup = try Setup(algorithm: algorithm)
            let jwtKit = try await JWTKitVerifier(setup: setup)
            let name = algorithm.rawValue
            cases.append(("\(name) token", { try measure { try setup.verifyToken() } }))
            cases.append(("\(name) proof", { try measure { try setup.verifyProof() } }))
            cases.append(("\(name) token+proof", { try measure { try setup.verifyToken(); try setup.verifyProof() } }))
            cases.append(("\(name) signature only", { try measure { try setup.verifyRawSignature() } }))
            cases.append(("\(name) token via jwt-kit", { try await measureAsync { try await jwtKit.verify() } }))
        }
        if let only {
            cases = cases.filter { $0.0.contains(only) }
        }
        var samples = [[Double]](repeating: [], count: cases.count)
        for _ in 0..<rounds {
            for (index, entry) in cases.enumerated() {
                samples[index].append(try await entry.1())
            }
        }
        let results = zip(cases, samples).map { entry, values in (entry.0, values.sorted()[values.count / 2]) }
        if json {
            let members = results.map { "\"\($0.0)\": \(Int($0.1))" }.joined(separator: ", ")
            print("{\(members)}")
        } else {
            for (name, rate) in results {
                print(name.padding(toLength: 32, withPad: " ", startingAt: 0), String(format: "%10.0f /s", rate))
            }
        }
    }

    func measure(_ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<200 { try body() }
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        var count = 0
        while clock.now < deadline {
            for _ in 0..<100 { try body() }
            count += 100
        }
        return Double(count) / (clock.now - start).seconds
    }

    func measureAsync(_ body: () async throws -> Void) async rethrows -> Double {
        for _ in 0..<200 { try await body() }
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        var count = 0
        while clock.now < deadline {
            for _ in 0..<100 { try await body() }
            count += 100
        }
        return Double(count) / (clock.now - start).seconds
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// One token and one proof, made once; verification is what is timed.
struct Setup {
    let issuerKey: PrivateSigningKey
    let token: String
    let proof: String
    let policy = TokenValidationPolicy(issuer: "https://issuer.example.com", audience: "https://api.example.com")
    let request: DPoPProofVerifier.Request
    let now = Int64(Date().timeIntervalSince1970)
    let verifier = DPoPProofVerifier()
    let rawJWS: JWSCompact

    init(algorithm: JWSAlgorithm) throws {
        issuerKey = PrivateSigningKey(generating: algorithm)
        let proofKey = PrivateSigningKey(generating: algorithm)
        let claims = EKeyClaims(
            issuer: policy.issuer, subject: "spiffe://example.org/bench", audience: policy.audience,
            issuedAt: now, expiresAt: now + 60,
            capability: try Capability(action: CapabilityAction(parsing: "POST:/payments"), limit: 1),
            confirmation: .jwkThumbprint(proofKey.publicKey.jwk.thumbprint), trace: EKeyClaims.randomTrace())
        token = try EKeyToken.sign(claims, keyID: "bench", bind: .dpop, using: issuerKey)
        let url = "https://api.example.com/payments"
        proof = try DPoPProof(method: "POST", url: url, issuedAt: now, accessTokenHash: EKeyToken.accessTokenHash(token))
            .signed(with: proofKey)
        request = DPoPProofVerifier.Request(
            method: "POST", url: url, accessToken: token, trace: claims.trace, boundThumbprint: proofKey.publicKey.jwk.thumbprint)
        rawJWS = try JWSCompact(parsing: token)
    }

    func verifyToken() throws {
        _ = try EKeyToken(parsing: token).verify(using: issuerKey.publicKey, policy: policy, now: now)
    }

    func verifyProof() throws {
        _ = try verifier.verify(proof, for: request, now: now)
    }

    func verifyRawSignature() throws {
        try rawJWS.verify(using: issuerKey.publicKey)
    }
}

/// The same E-Key verified by jwt-kit, with the claim checks E-Key needs.
struct JWTKitVerifier {
    struct Payload: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        var trace: String
        var cap: [String: JWTHeaderField]
        var cnf: [String: String]

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            try aud.verifyIntendedAudience(includes: "https://api.example.com")
            guard iss.value == "https://issuer.example.com" else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "iss") }
        }
    }

    let keys: JWTKeyCollection
    let token: String

    init(setup: Setup) async throws {
        let jwk = setup.issuerKey.publicKey.jwk.with(keyID: "bench", algorithm: setup.issuerKey.algorithm)
        keys = JWTKeyCollection()
        try await keys.add(jwksJSON: JSONValue.object(["keys": .array([jwk.jsonValue])]).serialized())
        token = setup.token
    }

    func verify() async throws {
        _ = try await keys.verify(token, as: Payload.self)
    }
}
