import Testing

@testable import EKeyProtocol

/// The documents the issuer writes member by member (``JSONObjectWriter``) are byte for
/// byte the ones the ``JSONValue`` tree gives: sorted members, the same escapes.
struct DirectJSONWritingTests {
    /// Strings that take every escape path: quotes, backslashes, named and `\u` control
    /// characters, DEL, U+2028/U+2029, other multi-byte text, the escape-worthy byte first
    /// or last.
    static let awkwardStrings = [
        "plain", "", "\"", "a\"b", "back\\slash", "line\nbreak\r\t", "\u{08}\u{0C}\u{01}\u{1F}", "del\u{7F}",
        "\u{2028}start", "end\u{2029}", "é ☃ 😀", "\u{E000}private", "x" + String(repeating: "y", count: 300) + "\"",
    ]

    static func claims(subject: String, confirmation: EKeyProtocol.Confirmation, scope: String?, subcapabilities: [String]) throws -> EKeyClaims {
        EKeyClaims(
            issuer: "https://issuer.example.com", subject: subject, audience: "https://api.example.com/\(subject)",
            issuedAt: 1_800_000_000, expiresAt: 1_800_000_030,
            capability: try Capability(
                action: CapabilityAction(parsing: "POST:/payments/:id"), scope: scope, limit: 3,
                subcapabilities: subcapabilities.map { try CapabilityAction(parsing: $0) }),
            confirmation: confirmation, trace: EKeyClaims.randomTrace())
    }

    @Test(arguments: awkwardStrings)
    func claimsMatchTheTree(text: String) throws {
        let variants = [
            try Self.claims(subject: text, confirmation: .jwkThumbprint(text), scope: nil, subcapabilities: []),
            try Self.claims(subject: text, confirmation: .certificateThumbprint("abc"), scope: text, subcapabilities: ["GET:/a", "GET:/b/*"]),
        ]
        for claims in variants {
            #expect(claims.serializedBytes() == claims.jsonValue.serializedBytes())
        }
    }

    /// Claims the gateway accepts read back whole from the bytes written directly.
    @Test func claimsReadBack() throws {
        let thumbprint = PrivateSigningKey(generating: .es256).publicKey.jwk.thumbprint
        for claims in [
            try Self.claims(subject: "spiffe://example.org/é\\\"", confirmation: .jwkThumbprint(thumbprint), scope: nil, subcapabilities: []),
            try Self.claims(subject: "s", confirmation: .certificateThumbprint(thumbprint), scope: "a\nb", subcapabilities: ["GET:/x/*"]),
        ] {
            #expect(try EKeyClaims(payload: claims.serializedBytes()) == claims)
        }
    }

    @Test(arguments: awkwardStrings)
    func tokenResponseMatchesTheTree(text: String) throws {
        for confirmation in [EKeyProtocol.Confirmation.jwkThumbprint(text), .certificateThumbprint(text)] {
            let response = TokenResponse(
                token: "a.b." + text, tokenType: "DPoP", expiresIn: 30, expiresAt: -5, trace: text, confirmation: confirmation, keyID: text)
            #expect(response.serializedBytes() == response.jsonValue.serializedBytes())
            #expect(try TokenResponse(body: response.serializedBytes()) == response)
        }
    }

    @Test(arguments: [BindingMode.dpop, .mtls], [JWSAlgorithm.es256, .edDSA])
    func signedTokensCarryTheSortedHeader(bind: BindingMode, algorithm: JWSAlgorithm) throws {
        let key = PrivateSigningKey(generating: algorithm)
        let thumbprint = PrivateSigningKey(generating: .es256).publicKey.jwk.thumbprint
        let confirmation: EKeyProtocol.Confirmation = bind == .dpop ? .jwkThumbprint(thumbprint) : .certificateThumbprint(thumbprint)
        let claims = try Self.claims(subject: "sub\"ject", confirmation: confirmation, scope: nil, subcapabilities: [])
        let compact = try EKeyToken.sign(claims, keyID: "k\\1", bind: bind, using: key)
        let parts = compact.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        #expect(parts.count == 3)
        let expectedHeader: JSONValue = [
            "alg": .string(algorithm.rawValue), "bind": .string(bind.rawValue), "kid": "k\\1", "typ": .string(EKeyToken.type),
        ]
        #expect(try Base64URL.decode(parts[0]) == expectedHeader.serializedBytes())
        #expect(try Base64URL.decode(parts[1]) == claims.jsonValue.serializedBytes())
        let token = try EKeyToken(parsing: compact)
        #expect(token.keyID == "k\\1")
        #expect(token.bind == bind)
        let policy = TokenValidationPolicy(issuer: claims.issuer, audience: claims.audience)
        #expect(try token.verify(using: key.publicKey, policy: policy, now: claims.issuedAt).claims == claims)
    }

    /// The escape scan sees a byte that needs escaping at every position of strings around
    /// the lengths where a scan might change strategy.
    @Test func theEscapeScanFindsEveryPosition() throws {
        for length in [1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 200] {
            for position in 0..<length {
                for special in ["\"", "\\", "\u{01}", "\u{7F}", "\u{2028}"] {
                    var characters = Array(repeating: "a", count: length)
                    characters[position] = special
                    let text = characters.joined()
                    let quoted = JSONValue.quoted(text)
                    #expect(quoted != "\"" + text + "\"", "\(length) \(position)")
                    #expect(try StrictJSONParser().parse(Array(quoted.utf8)) == .string(text))
                }
            }
        }
    }
}
