import Crypto
import EKeyProtocol
import Foundation

/// The test vectors of docs/spec/vectors/, for implementations in other languages.
///
/// Each case carries its input, the verdict the specification gives (`expect`) and is made
/// and judged by the same code the services run: ``generate(keys:)`` refuses to write a case
/// whose real verdict differs from the intended one, and ``judge(_:in:keys:)`` re-runs the
/// real code over the checked-in files. Regenerate with `make spec-vectors`.
enum SpecVectors {
    static let issuer = "https://issuer.example.com"
    static let audience = "https://api.example.com"
    static let clockSkew: Int64 = 5
    static let now: Int64 = 1_800_000_000
    static let resourceURL = "https://api.example.com/payments"
    static let proofMaximumAge = Duration.seconds(5)

    /// The folder the vectors live in, found from this file's place in the repository.
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/spec/vectors")

    static let fileNames = ["paths.json", "capabilities.json", "thumbprints.json", "tokens.json", "proofs.json"]

    /// The fixed keys every signed vector uses, kept in keys.json so regenerating keeps them.
    struct Keys {
        var issuer: PrivateSigningKey
        var holder: PrivateSigningKey
        var attacker: PrivateSigningKey
        let issuerKeyID = "vector-issuer-1"

        static func generated() -> Keys {
            Keys(issuer: .init(generating: .es256), holder: .init(generating: .es256), attacker: .init(generating: .es256))
        }

        init(issuer: PrivateSigningKey, holder: PrivateSigningKey, attacker: PrivateSigningKey) {
            self.issuer = issuer
            self.holder = holder
            self.attacker = attacker
        }

        init(document: JSONValue) throws {
            func key(_ name: String) throws -> PrivateSigningKey {
                try JWK(parsing: document[name]!["private_jwk"]!, context: .allowPrivate).privateKey()
            }
            self.init(issuer: try key("issuer"), holder: try key("holder"), attacker: try key("attacker"))
        }

        var issuerPublicJWK: JWK { issuer.publicKey.jwk.with(keyID: issuerKeyID, algorithm: .es256) }

        var document: JSONValue {
            func entry(_ key: PrivateSigningKey, _ role: String) -> JSONValue {
                ["role": .string(role), "private_jwk": key.jwk.jsonValue, "public_jwk": key.publicKey.jwk.jsonValue,
                 "thumbprint": .string(key.publicKey.jwk.thumbprint)]
            }
            return [
                "description": "Test-only keys. Never use them for anything but these vectors.",
                "issuer": entry(issuer, "signs every token; published in jwks"),
                "holder": entry(holder, "the client's DPoP key; tokens are bound to its thumbprint"),
                "attacker": entry(attacker, "signs forged tokens and proofs"),
                "jwks": ["keys": [issuerPublicJWK.jsonValue]],
            ]
        }
    }

    // MARK: Generating

    /// Every vector file's document, made by the real code, with each case's real verdict
    /// checked against the verdict it was written for.
    static func generate(keys: Keys) throws -> [String: JSONValue] {
        var documents: [String: JSONValue] = ["keys.json": keys.document]
        documents["paths.json"] = try document(
            "Request targets under the path rules (docs/spec/token.md §5.3). accept: the gateway matches the path as sent; reject: 400 with the error code.",
            pathCases.map { target, accept in
                let input: JSONValue = ["target": .string(target)]
                return (target, input, accept ? ["verdict": "accept"] : refusal(.invalidRequest))
            }, judge: { try judgePath($0) })
        documents["capabilities.json"] = try document(
            "Capability actions (docs/spec/token.md §5.1) and whether a request matches them (§5.2). A malformed action is refused with 400 invalid_request at the issuer.",
            capabilityCases.map { action, method, target, verdict in
                var input: [String: JSONValue] = ["action": .string(action)]
                if let method, let target { input["method"] = .string(method); input["target"] = .string(target) }
                let expect: JSONValue = verdict == "malformed" ? refusal(.invalidRequest) : ["verdict": .string(verdict)]
                return ("\(action) \(method ?? "") \(target ?? "")".trimmingCharacters(in: .whitespaces), .object(input), expect)
            }, judge: { try judgeCapability($0) })
        documents["thumbprints.json"] = try document(
            "RFC 7638 JWK SHA-256 thumbprints, base64url, as cnf.jkt carries them.",
            thumbprintCases(keys).map { name, jwk, thumbprint in
                (name, ["jwk": jwk], ["thumbprint": .string(thumbprint)])
            }, judge: { try judgeThumbprint($0) })
        documents["tokens.json"] = try document(
            "Tokens judged at a gateway (docs/spec/token.md §4.5) whose clock reads `now`, with the key set of keys.json, issuer \(issuer), audience \(audience), clock skew \(clockSkew) s. valid: the claims a gateway reads; invalid: the status and error code.",
            tokenCases(keys).map { name, token, expect in (name, ["token": .string(token), "now": .integer(now)], expect) },
            judge: { try judgeToken($0, keys: keys) })
        documents["proofs.json"] = try document(
            "DPoP proofs judged for a request (docs/spec/binding.md §6) at `now_ms`, with a proof maximum age of 5 s, `ath` required, and the token bound to the holder key of keys.json.",
            try proofCases(keys).map { name, proof, request, expect in
                (name, ["proof": .string(proof), "request": request, "now_ms": .integer(now * 1000)], expect)
            }, judge: { try judgeProof($0) })
        return documents
    }

    private static func document(
        _ description: String, _ cases: [(String, JSONValue, JSONValue)], judge: (JSONValue) throws -> JSONValue
    ) throws -> JSONValue {
        var written: [JSONValue] = []
        for (name, input, expect) in cases {
            let actual = try judge(input)
            guard actual == expect else {
                throw GenerationError(reason: "case \"\(name)\": the code says \(actual.serialized()), the specification \(expect.serialized())")
            }
            written.append(["name": .string(name), "input": input, "expect": expect])
        }
        return ["description": .string(description), "cases": .array(written)]
    }

    struct GenerationError: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    static func refusal(_ code: EKeyError.Code, status: Int? = nil) -> JSONValue {
        ["verdict": "reject", "status": .integer(Int64(status ?? code.defaultStatus)), "error": .string(code.wireName)]
    }

    static func refusal(_ error: EKeyError) -> JSONValue {
        ["verdict": "reject", "status": .integer(Int64(error.status)), "error": .string(error.code.wireName)]
    }

    // MARK: Judging with the real code

    /// The verdict the real code gives a case's input, in the shape of its `expect`.
    static func judge(_ file: String, input: JSONValue, keys: Keys) throws -> JSONValue {
        switch file {
        case "paths.json": try judgePath(input)
        case "capabilities.json": try judgeCapability(input)
        case "thumbprints.json": try judgeThumbprint(input)
        case "tokens.json": try judgeToken(input, keys: keys)
        case "proofs.json": try judgeProof(input)
        default: throw GenerationError(reason: "no judge for \(file)")
        }
    }

    static func judgePath(_ input: JSONValue) throws -> JSONValue {
        do {
            _ = try RequestTarget(validating: input["target"]!.stringValue!)
            return ["verdict": "accept"]
        } catch {
            return refusal(error)
        }
    }

    static func judgeCapability(_ input: JSONValue) throws -> JSONValue {
        let action: CapabilityAction
        do {
            action = try CapabilityAction(parsing: input["action"]!.stringValue!)
        } catch {
            return refusal(error)
        }
        guard let method = input["method"]?.stringValue, let target = input["target"]?.stringValue else {
            return ["verdict": "valid"]
        }
        let matches = try action.matches(method: method, target: RequestTarget(validating: target))
        return ["verdict": matches ? "match" : "no_match"]
    }

    static func judgeThumbprint(_ input: JSONValue) throws -> JSONValue {
        ["thumbprint": .string(try JWK(parsing: input["jwk"]!, context: .publicOnly).thumbprint)]
    }

    /// A gateway's step 2: parse, find the key by `kid` in the key set, verify signature and claims.
    static func judgeToken(_ input: JSONValue, keys: Keys) throws -> JSONValue {
        do {
            let token = try EKeyToken(parsing: input["token"]!.stringValue!)
            guard token.keyID == keys.issuerKeyID else {
                throw EKeyError(.invalidToken, "unknown kid")
            }
            let verified = try token.verify(
                using: keys.issuerPublicJWK.publicKey(),
                policy: TokenValidationPolicy(issuer: issuer, audience: audience, clockSkew: clockSkew),
                now: input["now"]!.integerValue!)
            let binding: JSONValue =
                switch verified.binding {
                case .dpop(let thumbprint): ["mode": "DPoP", "jkt": .string(thumbprint)]
                case .mtls(let digest): ["mode": "mTLS", "x5t#S256": .string(Base64URL.encode(digest))]
                }
            return [
                "verdict": "valid", "sub": .string(verified.claims.subject), "cap": verified.claims.capability.jsonValue,
                "trace": .string(verified.claims.trace), "binding": binding,
            ]
        } catch let error as EKeyError {
            return refusal(error)
        }
    }

    static func judgeProof(_ input: JSONValue) throws -> JSONValue {
        let request = input["request"]!
        let verifier = DPoPProofVerifier(policy: .init(maximumAge: proofMaximumAge, requireAccessTokenHash: true))
        do {
            let proof = try verifier.verify(
                input["proof"]!.stringValue!,
                for: .init(
                    method: request["method"]!.stringValue!, url: request["url"]!.stringValue!,
                    accessToken: request["access_token"]!.stringValue!, boundThumbprint: request["bound_jkt"]!.stringValue!),
                nowMilliseconds: input["now_ms"]!.integerValue!)
            return ["verdict": "valid", "jti": .string(proof.jti), "jkt": .string(proof.thumbprint)]
        } catch {
            return refusal(error)
        }
    }

    // MARK: The cases, with the verdicts the specification gives

    static let pathCases: [(String, Bool)] = [
        ("/payments", true), ("/payments/", true), ("/payments?x=1&y=/z", true), ("/", true),
        ("/a%20b", true), ("/a;v=1/b", true), ("/%C3%A9", true),
        ("/a/../b", false), ("/a/./b", false), ("/a/..", false), ("/a/..;x/b", false), ("/a/.;x", false),
        ("/a/%2e%2e/b", false), ("/a/%2E/b", false), ("/a%2Fb", false), ("/a%2fb", false), ("/a%5Cb", false),
        ("/a%00b", false), ("/%70ayments", false), ("/a%7E", false), ("/a%61", false),
        ("//payments", false), ("/a//b", false), ("/a///", false), ("/a/;", false), ("/a/;x/b", false), ("/;", false),
        ("/a%zz", false), ("/a%2", false), ("/a b", false), ("/a\\b", false), ("/a#frag", false), ("/caf\u{e9}", false),
        ("payments", false), ("*", false), ("https://api.example.com/payments", false), ("/a?b c", false),
    ]

    /// (action, method, target, verdict): `match`/`no_match` for a request, `valid` or
    /// `malformed` for the action alone.
    static let capabilityCases: [(String, String?, String?, String)] = [
        ("POST:/payments", "POST", "/payments", "match"), ("POST:/payments", "POST", "/payments?x=1", "match"),
        ("POST:/payments", "POST", "/payments/", "no_match"), ("POST:/payments", "POST", "/paymentsx", "no_match"),
        ("POST:/payments", "POST", "/payments/1", "no_match"), ("POST:/payments", "GET", "/payments", "no_match"),
        ("POST:/payments", "post", "/payments", "no_match"), ("POST:/payments", "POST", "/Payments", "no_match"),
        ("GET:/payments/:id", "GET", "/payments/42", "match"), ("GET:/payments/:id", "GET", "/payments/", "no_match"),
        ("GET:/payments/:id", "GET", "/payments", "no_match"), ("GET:/payments/:id", "GET", "/payments/42/refunds", "no_match"),
        ("GET:/files/*", "GET", "/files/", "match"), ("GET:/files/*", "GET", "/files/a/b/c", "match"),
        ("GET:/files/*", "GET", "/files", "no_match"), ("GET:/files/*", "GET", "/filesx/a", "no_match"),
        ("GET:/*", "GET", "/", "match"), ("GET:/*", "GET", "/any/path", "match"),
        ("GET:/", "GET", "/", "match"), ("GET:/", "GET", "/x", "no_match"),
        ("GET:/a%20b", "GET", "/a%20b", "match"), ("GET:/a%20b", "GET", "/a%2520b", "no_match"),
        ("GET:/", nil, nil, "valid"), ("POST:/payments/", nil, nil, "valid"),
        ("GET:/a//b", nil, nil, "malformed"), ("GET:/a/../b", nil, nil, "malformed"), ("GET:/a/*/b", nil, nil, "malformed"),
        ("post:/a", nil, nil, "malformed"), ("GET:/a?x=1", nil, nil, "malformed"), ("GET/a", nil, nil, "malformed"),
        ("GET:a", nil, nil, "malformed"), ("GET:/a%2Fb", nil, nil, "malformed"), ("TOOLONGMETHODNAMEX:/a", nil, nil, "malformed"),
    ]

    static func thumbprintCases(_ keys: Keys) -> [(String, JSONValue, String)] {
        let holder = keys.holder.publicKey.jwk
        var decorated = holder.jsonValue.objectValue!
        decorated["kid"] = "any-kid"
        decorated["use"] = "sig"
        decorated["alg"] = "ES256"
        let ed25519: JSONValue = ["kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]
        return [
            ("EC P-256 holder key", holder.jsonValue, holder.thumbprint),
            ("the same key with kid, use and alg (ignored by RFC 7638)", .object(decorated), holder.thumbprint),
            ("EC P-256 issuer key", keys.issuerPublicJWK.jsonValue, keys.issuerPublicJWK.thumbprint),
            ("Ed25519, RFC 8037 Appendix A.3", ed25519, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
        ]
    }

    static func tokenCases(_ keys: Keys) throws -> [(String, String, JSONValue)] {
        let trace = "5f0c1d2e3f405162738495a6b7c8d9e0"
        let holderThumbprint = keys.holder.publicKey.jwk.thumbprint
        let certificateDigest = Base64URL.encode(SHA256.hash(data: Array("vector client certificate DER".utf8)))
        func claims(
            iat: Int64 = now - 10, exp: Int64 = now + 20, iss: String = issuer, aud: String = audience,
            confirmation: JSONValue? = nil, capability: JSONValue = ["action": "POST:/payments", "limit": 1]
        ) -> [String: JSONValue] {
            [
                "iss": .string(iss), "sub": "spiffe://example.org/checkout", "aud": .string(aud), "iat": .integer(iat),
                "exp": .integer(exp), "cap": capability, "trace": .string(trace),
                "cnf": confirmation ?? ["jkt": .string(holderThumbprint)],
            ]
        }
        func header(_ members: [String: JSONValue] = [:]) -> [String: JSONValue] {
            var header: [String: JSONValue] = ["typ": "EKEY", "kid": .string(keys.issuerKeyID), "bind": "DPoP"]
            for (name, value) in members { if value == .null { header.removeValue(forKey: name) } else { header[name] = value } }
            return header
        }
        func signed(_ header: [String: JSONValue], _ claims: [String: JSONValue], with key: PrivateSigningKey? = nil) throws -> String {
            try JWSCompact.sign(header: header, payload: JSONValue.object(claims).serializedBytes(), using: key ?? keys.issuer)
        }
        func unsigned(_ header: [String: JSONValue], _ claims: [String: JSONValue], signature: [UInt8]) -> String {
            let input = Base64URL.encode(JSONValue.object(header).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(claims).serializedBytes())
            return input + "." + Base64URL.encode(signature)
        }
        func valid(_ binding: JSONValue, cap: JSONValue = ["action": "POST:/payments", "limit": 1]) -> JSONValue {
            ["verdict": "valid", "sub": "spiffe://example.org/checkout", "cap": cap, "trace": .string(trace), "binding": binding]
        }
        let dpop: JSONValue = ["mode": "DPoP", "jkt": .string(holderThumbprint)]
        let invalid = refusal(.invalidToken)

        var hs256Header = header()
        hs256Header["alg"] = "HS256"
        let hs256Input = Base64URL.encode(JSONValue.object(hs256Header).serializedBytes()) + "." + Base64URL.encode(JSONValue.object(claims()).serializedBytes())
        let hmacKey = SymmetricKey(data: Array(keys.issuerPublicJWK.jsonValue.serialized().utf8))
        let hs256 = hs256Input + "." + Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Array(hs256Input.utf8), using: hmacKey)))
        var noneHeader = header()
        noneHeader["alg"] = "none"
        let subcap: JSONValue = ["action": "POST:/payments", "limit": 3, "subcap": ["GET:/payments/:id"], "scope": "payments"]

        return [
            ("valid DPoP-bound token", try signed(header(), claims()), valid(dpop)),
            ("valid token with subcap and scope", try signed(header(), claims(capability: subcap)), valid(dpop, cap: subcap)),
            ("valid mTLS-bound token (x5t#S256)",
             try signed(header(["bind": "mTLS"]), claims(confirmation: ["x5t#S256": .string(certificateDigest)])),
             valid(["mode": "mTLS", "x5t#S256": .string(certificateDigest)])),
            ("valid token without bind, read by cnf", try signed(header(["bind": .null]), claims()), valid(dpop)),
            ("expired within the clock skew is still valid", try signed(header(), claims(iat: now - 30, exp: now - 5)), valid(dpop)),
            ("expired beyond the clock skew", try signed(header(), claims(iat: now - 30, exp: now - 6)), refusal(.expiredToken)),
            ("iat in the future beyond the skew", try signed(header(), claims(iat: now + 6, exp: now + 30)), invalid),
            ("lifetime over 60 s", try signed(header(), claims(iat: now - 10, exp: now + 51)), invalid),
            ("exp not after iat", try signed(header(), claims(iat: now, exp: now)), invalid),
            ("wrong iss", try signed(header(), claims(iss: "https://evil.example.com")), invalid),
            ("wrong aud", try signed(header(), claims(aud: "https://other.example.com")), invalid),
            ("alg none, empty signature", unsigned(noneHeader, claims(), signature: []), invalid),
            ("alg none with a signature", unsigned(noneHeader, claims(), signature: [1, 2, 3]), invalid),
            ("HS256 keyed with the issuer's public JWK (alg confusion)", hs256, invalid),
            ("typ JWT instead of EKEY", try signed(header(["typ": "JWT"]), claims()), invalid),
            ("typ missing", try signed(header(["typ": .null]), claims()), invalid),
            ("jwk injected in the header, signed by that key",
             try signed(header(["jwk": keys.attacker.publicKey.jwk.jsonValue]), claims(), with: keys.attacker), invalid),
            ("jku in the header", try signed(header(["jku": "https://evil.example.com/jwks"]), claims()), invalid),
            ("x5c in the header", try signed(header(["x5c": ["MIIB"]]), claims()), invalid),
            ("crit header", try signed(header(["crit": ["exp"]]), claims()), invalid),
            ("kid not in the key set", try signed(header(["kid": "unknown-kid"]), claims()), invalid),
            ("no kid", try signed(header(["kid": .null]), claims()), invalid),
            ("signed by another key under the issuer's kid", try signed(header(), claims(), with: keys.attacker), invalid),
            ("bind DPoP with a certificate thumbprint",
             try signed(header(), claims(confirmation: ["x5t#S256": .string(certificateDigest)])), invalid),
            ("unknown bind value", try signed(header(["bind": "Bearer"]), claims()), invalid),
            ("malformed action in cap",
             try signed(header(), claims(capability: ["action": "POST:/a/../b", "limit": 1])), invalid),
            ("limit 0", try signed(header(), claims(capability: ["action": "POST:/payments", "limit": 0])), invalid),
            ("two parts only", "eyJhbGciOiJFUzI1NiJ9.e30", invalid),
            ("over 8 KiB", try signed(header(["pad": .string(String(repeating: "x", count: 8200))]), claims()),
             refusal(.invalidRequest)),
        ]
    }

    static func proofCases(_ keys: Keys) throws -> [(String, String, JSONValue, JSONValue)] {
        let token = try tokenCases(keys)[0].1
        let ath = EKeyToken.accessTokenHash(token)
        let holderThumbprint = keys.holder.publicKey.jwk.thumbprint
        let request: JSONValue = [
            "method": "POST", "url": .string(resourceURL), "access_token": .string(token), "bound_jkt": .string(holderThumbprint),
        ]
        func claims(_ changes: [String: JSONValue] = [:]) -> [String: JSONValue] {
            var claims: [String: JSONValue] = [
                "jti": "vector-proof-1", "htm": "POST", "htu": .string(resourceURL), "iat": .integer(now), "ath": .string(ath),
            ]
            for (name, value) in changes { if value == .null { claims.removeValue(forKey: name) } else { claims[name] = value } }
            return claims
        }
        func header(_ changes: [String: JSONValue] = [:], key: PrivateSigningKey? = nil) -> [String: JSONValue] {
            var header: [String: JSONValue] = ["typ": "dpop+jwt", "jwk": (key ?? keys.holder).publicKey.jwk.jsonValue]
            for (name, value) in changes { if value == .null { header.removeValue(forKey: name) } else { header[name] = value } }
            return header
        }
        func signed(_ header: [String: JSONValue], _ claims: [String: JSONValue], with key: PrivateSigningKey? = nil) throws -> String {
            try JWSCompact.sign(header: header, payload: JSONValue.object(claims).serializedBytes(), using: key ?? keys.holder)
        }
        let valid: JSONValue = ["verdict": "valid", "jti": "vector-proof-1", "jkt": .string(holderThumbprint)]
        let invalid = refusal(.invalidProof)
        let privateJWK = keys.holder.jwk.jsonValue
        var noneHeader = header()
        noneHeader["alg"] = "none"
        let noneProof = Base64URL.encode(JSONValue.object(noneHeader).serializedBytes()) + "."
            + Base64URL.encode(JSONValue.object(claims()).serializedBytes()) + "."

        return [
            ("valid proof", try signed(header(), claims()), request, valid),
            ("htu with upper-case host and default port", try signed(header(), claims(["htu": "https://API.example.com:443/payments"])), request, valid),
            ("htu with the default port written with a leading zero", try signed(header(), claims(["htu": "https://api.example.com:0443/payments"])), request, invalid),
            ("htu with the default port written with a plus sign", try signed(header(), claims(["htu": "https://api.example.com:+443/payments"])), request, invalid),
            ("iat 5 s old (the maximum age)", try signed(header(), claims(["iat": .integer(now - 5)])), request, valid),
            ("iat 7 s old", try signed(header(), claims(["iat": .integer(now - 7)])), request, invalid),
            ("iat 7 s ahead", try signed(header(), claims(["iat": .integer(now + 7)])), request, invalid),
            ("htm GET for a POST", try signed(header(), claims(["htm": "GET"])), request, invalid),
            ("htm in lower case", try signed(header(), claims(["htm": "post"])), request, invalid),
            ("htu of another path", try signed(header(), claims(["htu": "https://api.example.com/refunds"])), request, invalid),
            ("htu of another origin", try signed(header(), claims(["htu": "https://evil.example.com/payments"])), request, invalid),
            ("ath of another token", try signed(header(), claims(["ath": .string(EKeyToken.accessTokenHash(token + "x"))])), request, invalid),
            ("no ath", try signed(header(), claims(["ath": .null])), request, invalid),
            ("no jti", try signed(header(), claims(["jti": .null])), request, invalid),
            ("jti over 128 characters", try signed(header(), claims(["jti": .string(String(repeating: "j", count: 129))])), request, invalid),
            ("typ JWT", try signed(header(["typ": "JWT"]), claims()), request, invalid),
            ("alg none", noneProof, request, invalid),
            ("no jwk in the header", try signed(header(["jwk": .null]), claims()), request, invalid),
            ("private key material in the jwk", try signed(header(["jwk": privateJWK]), claims()), request, invalid),
            ("signed by another key than the header's jwk",
             try signed(header(), claims(), with: keys.attacker), request, invalid),
            ("a valid proof by a key the token is not bound to",
             try signed(header(key: keys.attacker), claims(), with: keys.attacker), request, invalid),
        ]
    }

    // MARK: Files

    /// `value` as indented JSON: `description`, `name`, `input`, `expect` first, other keys sorted.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        let leading = ["description", "name", "input", "expect"]
        switch value {
        case .object(let members) where !members.isEmpty:
            let order = leading.filter { members[$0] != nil } + members.keys.filter { !leading.contains($0) }.sorted()
            let lines = order.map { inner + JSONValue.string($0).serialized() + ": " + pretty(members[$0]!, indent: inner) }
            return "{\n" + lines.joined(separator: ",\n") + "\n" + indent + "}"
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        default:
            return value.serialized()
        }
    }

    static func read(_ file: String) throws -> JSONValue {
        .object(try StrictJSONParser().parseObject(Array(Data(contentsOf: folder.appendingPathComponent(file)))))
    }

    static func write(_ documents: [String: JSONValue]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (file, document) in documents {
            try Data((pretty(document) + "\n").utf8).write(to: folder.appendingPathComponent(file))
        }
    }
}
