import AsyncHTTPClient
import Crypto
import CryptoExtras
import EKeyConfig
import EKeyIssuer
import EKeyProtocol
import EKeyServer
import EKeyStore
import EKeyTestSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// A publisher and issuers as real processes with real TLS, configured by one YAML file the
/// test writes, with the development PKI and the test's client keys.
final class IssuerStack: @unchecked Sendable {
    static let workloadID = "spiffe://example.org/checkout"
    static let issuerClientID = "spiffe://example.org/ekey/issuer"
    static let adminID = "spiffe://example.org/ekey/admin"
    static let audience = "https://api.example.com"
    static let idpIssuer = "https://idp.example.test"

    let files: TemporaryFiles
    let pki: DevelopmentPKI
    let workload: DevelopmentPKI.Issued
    let botKey = PrivateSigningKey.p256(.init())
    let idpKey = PrivateSigningKey.p256(.init())
    /// The IdP's RS256 key (most IdPs sign subject tokens with RSA).
    let idpRSAKey: _RSA.Signing.PrivateKey
    let jwksPort: Int
    let jwksAdminPort: Int
    var publisher: ServiceProcess?
    var issuers: [(process: ServiceProcess, port: Int, adminPort: Int)] = []

    init() throws {
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        workload = try pki.issueClient(commonName: "checkout", spiffeID: Self.workloadID)
        try files.write("issuer-client", pki.issueClient(commonName: "issuer", spiffeID: Self.issuerClientID))
        try files.write("admin", pki.issueClient(commonName: "admin", spiffeID: Self.adminID))
        try files.write("workload", workload)
        try files.write("legacy", pki.issueClient(commonName: "legacy", spiffeID: nil))
        try files.write("stranger", pki.issueClient(commonName: "stranger", spiffeID: "spiffe://example.org/stranger"))
        idpRSAKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try idpRSAKey.publicKey.getKeyPrimitives()
        let rsaJWK: JSONValue = [
            "kty": "RSA", "kid": "idp-rsa", "alg": "RS256", "use": "sig",
            "n": .string(Base64URL.encode(Array(primitives.modulus))), "e": .string(Base64URL.encode(Array(primitives.publicExponent))),
        ]
        let idpJWKS: JSONValue = ["keys": [idpKey.publicKey.jwk.with(keyID: "idp-1", algorithm: .es256).jsonValue, rsaJWK]]
        try files.write("idp-jwks.json", idpJWKS.serialized())
        jwksPort = try FreePort.pick()
        jwksAdminPort = try FreePort.pick()
    }

    deinit { files.remove() }

    /// Runs `body` with a new stack, then stops its processes and clients, also when `body` throws.
    static func with(_ body: (IssuerStack) async throws -> Void) async throws {
        let stack = try IssuerStack()
        do {
            try await body(stack)
        } catch {
            try? await stack.stopAll()
            throw error
        }
        try await stack.stopAll()
    }

    func issuerURL(_ index: Int = 0) -> String { "https://localhost:\(issuers[index].port)" }

    /// The stack file for one issuer on `port`.
    func config(port: Int, adminPort: Int, store: String, signing: String) -> String {
        """
        store:
          url: \(store)
          prefix: "ekey-issuer-test:"
        \(StackYAML.jwks(port: jwksPort, adminPort: jwksAdminPort, issuer: Self.issuerClientID, admin: Self.adminID, cacheMaxAge: "1s"))
        issuer:
          listen: 127.0.0.1:\(port)
          admin_listen: 127.0.0.1:\(adminPort)
          issuer_url: https://localhost:\(port)
          clock_skew: 5s
          tls: \(TemporaryFiles.serverTLSYAML)
          signing: \(signing)
          publisher: {url: "https://localhost:\(jwksPort)", ca: ca.crt, cert: issuer-client.crt, key: issuer-client.key}
          clients: [{id: ci-bot, jkt: "\(botKey.publicKey.jwk.thumbprint)"}]
          idps: [{name: test, issuer: "\(Self.idpIssuer)", audience: "https://issuer.example.test", jwks_file: idp-jwks.json, subject_claim: repo}]
          templates:
            - name: payments
              subjects: ["\(Self.workloadID)", "client:ci-bot", "oidc:test:acme/*"]
              audiences: ["\(Self.audience)"]
              actions: ["POST:/payments", "GET:/payments/:id"]
              max_limit: 3
              max_ttl: 30
              binds: [DPoP, mTLS]
              delegate_subjects: ["\(Self.workloadID)/*"]
            - name: legacy
              subjects: ["x509:legacy"]
              audiences: ["\(Self.audience)"]
              actions: ["GET:/reports/*"]
              max_limit: 1
              max_ttl: 10
              binds: [mTLS]
              rate_per_minute: 3
        """
    }

    func startPublisher() async throws {
        let path = try files.write("jwks.yaml", config(port: 1, adminPort: 2, store: "memory://", signing: "{alg: ES256}"))
        let process = try ServiceProcess("ekey-jwks", ["--config", path])
        try await process.waitUntilListening(port: jwksPort)
        publisher = process
    }

    /// Starts an issuer; returns its index.
    @discardableResult
    func startIssuer(store: String = "memory://", signing: String = "{alg: ES256, rotate_every: 24h}", waitReady: Bool = true) async throws -> Int {
        let port = try FreePort.pick()
        let adminPort = try FreePort.pick()
        let path = try files.write("issuer-\(port).yaml", config(port: port, adminPort: adminPort, store: store, signing: signing))
        let process = try ServiceProcess("ekey-issuer", ["--config", path])
        try await process.waitUntilListening(port: port)
        try await process.waitUntilListening(port: adminPort)
        issuers.append((process, port, adminPort))
        if waitReady {
            try await waitUntilReady(issuers.count - 1)
        }
        return issuers.count - 1
    }

    func waitUntilReady(_ index: Int, timeout: Duration = .seconds(20)) async throws {
        do {
            try await waitUntilReady(adminPort: issuers[index].adminPort, timeout: timeout)
        } catch {
            throw StackFailure(description: "issuer \(index) did not become ready:\n\(issuers[index].process.output)")
        }
    }

    /// Waits until the issuer whose admin listener is on `adminPort` answers `/readyz` with 200.
    func waitUntilReady(adminPort: Int, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        let plain = plainClient()
        while ContinuousClock.now < deadline {
            if try await send(plain, .GET, "http://127.0.0.1:\(adminPort)/readyz").status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw StackFailure(description: "the issuer with admin port \(adminPort) did not become ready")
    }

    /// Runs an issuer inside the test process, configured like ``startIssuer(store:signing:waitReady:)``
    /// but registering its live keys again every `reRegisterEvery` of `clock`; its log lines
    /// go to `log`. `body` gets the issuer's port and admin port.
    func withIssuerInProcess<R: Sendable>(
        signing: String = "{alg: ES256, rotate_every: 24h}", reRegisterEvery: Duration, clock: any Clock<Duration> = ContinuousClock(), log: LogSink,
        _ body: (_ port: Int, _ adminPort: Int) async throws -> R
    ) async throws -> R {
        let port = try FreePort.pick()
        let adminPort = try FreePort.pick()
        let path = try files.write("issuer-\(port).yaml", config(port: port, adminPort: adminPort, store: "memory://", signing: signing))
        let settings = try ConfigLoader.load(path: path, environment: [:]).config.require(IssuerConfig.self)
        let logger = Logger(label: "ekey-issuer") { JSONLogHandler(label: $0, sink: log) }
        let publisherClient = try InternalHTTPClient.make(
            caFile: settings.publisher.ca, certificateFile: settings.publisher.cert, keyFile: settings.publisher.key)
        let registrar = KeyRegistrationClient(baseURL: settings.publisher.url.absoluteString, client: publisherClient, logger: logger)
        let issuer = try Issuer(
            configuration: settings, store: MemoryStore(), registrar: registrar,
            listeners: .init(
                host: "127.0.0.1", port: port, tls: try ServiceStartup.serverTLS(settings.tls), adminHost: "127.0.0.1", adminPort: adminPort),
            logger: logger, reRegisterEvery: reRegisterEvery, keyClock: clock)
        do {
            let result = try await LiveServices.with(roles: ["issuer", "admin"], { issuer.services(onRunning: $0) }) { _ in
                try await body(port, adminPort)
            }
            try await publisherClient.shutdown()
            return result
        } catch {
            try? await publisherClient.shutdown()
            throw error
        }
    }

    private var clients: [HTTPClient] = []

    /// A plaintext HTTP client for the admin listeners.
    func plainClient() -> HTTPClient {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        clients.append(client)
        return client
    }

    /// Stops every process and client.
    func stopAll() async throws {
        for client in clients {
            try? await client.shutdown()
        }
        clients = []
        for issuer in issuers {
            issuer.process.signal(SIGTERM)
            _ = try await issuer.process.waitForExit()
        }
        publisher?.signal(SIGTERM)
        _ = try await publisher?.waitForExit()
    }

    /// A client presenting `identity`'s certificate (or none).
    func client(_ identity: String?, http1: Bool = false) throws -> HTTPClient {
        let client = try files.httpsClient(certificate: identity, http1: http1)
        clients.append(client)
        return client
    }

    struct Reply: Sendable {
        let status: Int
        let version: HTTPVersion
        let headers: HTTPHeaders
        let body: String

        var json: [String: JSONValue] { (try? StrictJSONParser().parseObject(Array(body.utf8))) ?? [:] }
        var error: String? { json["error"]?.stringValue }
    }

    func send(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), version: response.version, headers: response.headers, body: String(buffer: bytes))
    }

    /// `POST /token` on issuer `index`.
    func token(_ client: HTTPClient, _ body: JSONValue, proofs: [String] = [], index: Int = 0) async throws -> Reply {
        try await send(client, .POST, issuerURL(index) + "/token", body: body.serialized(), headers: proofs.map { ("DPoP", $0) })
    }

    func proof(_ key: PrivateSigningKey, url: String? = nil, issuedAt: Int64? = nil, method: String = "POST", index: Int = 0) throws -> String {
        try DPoPProof(method: method, url: url ?? issuerURL(index) + "/token", issuedAt: issuedAt ?? Self.now()).signed(with: key)
    }

    /// A subject token signed RS256 by the IdP's RSA key (`alg` may be forced for hostile cases).
    func rsaSubjectToken(repo: String = "acme/app", algorithm: String = "RS256", kid: String = "idp-rsa") throws -> String {
        let now = Self.now()
        let claims: JSONValue = .object([
            "iss": .string(Self.idpIssuer), "aud": "https://issuer.example.test", "sub": .string("repo:\(repo)"), "repo": .string(repo),
            "iat": .integer(now - 10), "exp": .integer(now + 300),
        ])
        let input = Base64URL.encode(JSONValue.object(["typ": "JWT", "alg": .string(algorithm), "kid": .string(kid)]).serializedBytes()) + "."
            + Base64URL.encode(claims.serializedBytes())
        let signature = try idpRSAKey.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        return input + "." + Base64URL.encode(Array(signature.rawRepresentation))
    }

    func subjectToken(issuer: String = IssuerStack.idpIssuer, audience: String = "https://issuer.example.test", expiresIn: Int64 = 300, repo: String = "acme/app")
        throws -> String
    {
        let now = Self.now()
        let claims: JSONValue = .object([
            "iss": .string(issuer), "aud": .string(audience), "sub": .string("repo:\(repo)"), "repo": .string(repo),
            "iat": .integer(now - 10), "exp": .integer(now + expiresIn),
        ])
        return try JWSCompact.sign(header: ["typ": "JWT", "kid": "idp-1"], payload: claims.serializedBytes(), using: idpKey)
    }

    static func request(
        action: String = "POST:/payments", limit: Int64 = 1, ttl: Int64? = nil, bind: String = "mTLS", audience: String = IssuerStack.audience,
        extra: [String: JSONValue] = [:]
    ) -> JSONValue {
        var members: [String: JSONValue] = [
            "aud": .string(audience), "cap": .object(["action": .string(action), "limit": .integer(limit)]), "bind": .string(bind),
        ]
        if let ttl { members["ttl"] = .integer(ttl) }
        members.merge(extra) { _, new in new }
        return .object(members)
    }

    /// The publisher's current key set.
    func publishedKeys() async throws -> JWKSet {
        let reader = try client(nil)
        let reply = try await send(reader, .GET, "https://localhost:\(jwksPort)/.well-known/jwks.json")
        return try JWKSet(parsing: Array(reply.body.utf8))
    }

    /// Verifies `token` against the publisher's JWKS as a gateway would; the issuer is
    /// issuer `index`, or `issuer` when given.
    func verifyAgainstPublisher(_ token: String, index: Int = 0, issuer: String? = nil) async throws -> VerifiedEKey {
        let parsed = try EKeyToken(parsing: token)
        guard let key = try await publishedKeys()[keyID: parsed.keyID] else {
            throw StackFailure(description: "kid \(parsed.keyID) is not published")
        }
        return try parsed.verify(
            using: key.publicKey(), policy: .init(issuer: issuer ?? issuerURL(index), audience: Self.audience), now: Self.now())
    }

    /// `DELETE /internal/v1/keys/{kid}` on the publisher with the admin certificate; the status.
    func revoke(_ keyID: String) async throws -> Int {
        try await send(try client("admin"), .DELETE, "https://localhost:\(jwksPort)/internal/v1/keys/\(keyID)").status
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }
}

struct StackFailure: Error, CustomStringConvertible {
    let description: String
}
