// The Swift client SDK: DPoP keys, proofs, token requests and calls through the gateway.
import AsyncHTTPClient
public import EKeyProtocol
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A client of an E-Key issuer and gateway: asks the issuer for a short-lived token for one
/// capability, then calls the API through the gateway with the token and a fresh proof.
///
/// It authenticates to the issuer with a TLS client certificate (mTLS) and/or a registered
/// DPoP key, as configured. Call ``shutdown()`` when done (or use ``withClient(_:_:)``).
///
/// ```swift
/// let configuration = EKeyClient.Configuration(
///     issuerURL: "https://localhost:8443", caFile: ".ekey/ca.crt",
///     dpopKey: try DPoPKey.load(path: ".ekey/demo-dpop.key"))
/// try await EKeyClient.withClient(configuration) { client in
///     let token = try await client.token(action: "POST:/payments", audience: "https://api.example.com")
///     let response = try await client.call("POST", "https://localhost:9443/payments", body: Array(#"{"amount":10}"#.utf8), token: token)
///     print(response.status, response.bodyText)
/// }
/// ```
public final class EKeyClient: Sendable {
    /// Where the issuer is and how to authenticate to it.
    public struct Configuration: Sendable {
        /// The issuer's URL (its `issuer_url`; the token endpoint is this + `/token`).
        public var issuerURL: String
        /// PEM CA bundle to trust for the issuer and gateway; nil uses the system roots.
        public var caFile: String?
        /// PEM client certificate and key for mTLS (issuer authentication, `bind: mTLS`).
        public var clientCertificateFile: String?
        public var clientKeyFile: String?
        /// The DPoP key: authenticates to the issuer when registered in `issuer.clients`,
        /// and is the key DPoP-bound tokens are bound to.
        public var dpopKey: DPoPKey?
        /// Per-request timeout.
        public var timeout: Duration

        public init(
            issuerURL: String, caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil,
            dpopKey: DPoPKey? = nil, timeout: Duration = .seconds(30)
        ) {
            self.issuerURL = issuerURL
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.dpopKey = dpopKey
            self.timeout = timeout
        }
    }

    public let configuration: Configuration
    private let http: HTTPClient

    /// Creates a client; reads the CA and client certificate files now.
    public init(_ configuration: Configuration) throws(EKeyClientError) {
        self.configuration = configuration
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["h2", "http/1.1"]
        if let caFile = configuration.caFile {
            guard FileManager.default.fileExists(atPath: caFile) else {
                throw EKeyClientError("CA file \(caFile) not found: run `ekey pki init` (or `ekey up`) first, or pass --ca")
            }
            tls.trustRoots = .file(caFile)
        }
        switch (configuration.clientCertificateFile, configuration.clientKeyFile) {
        case (let certificate?, let key?):
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw EKeyClientError("cannot read the client certificate \(certificate) or key \(key) (\(error)); check both are PEM files")
            }
        case (nil, nil):
            break
        default:
            throw EKeyClientError("a client certificate needs both --cert and --key")
        }
        var http = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(5), read: .seconds(60)))
        http.httpVersion = .automatic
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    /// Runs `body` with a new client and shuts it down afterwards, whatever happens.
    public static func withClient<R: Sendable>(_ configuration: Configuration, _ body: (EKeyClient) async throws -> R) async throws -> R {
        let client = try EKeyClient(configuration)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Closes the connections. Call it once, before the client goes away.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: Tokens

    /// Asks for a token for one action (`METHOD:/path`) on `audience`.
    /// - Parameters:
    ///   - bind: `.dpop` binds to ``Configuration/dpopKey``; `.mtls` to the client certificate.
    ///   - limit: how many calls the token allows.
    ///   - ttl: the lifetime in seconds (default: the policy's maximum, at most 60).
    ///   - subcapabilities: further actions the token allows (`GET:/payments/:id`).
    public func token(
        action: String, audience: String, bind: BindingMode = .dpop, limit: Int = 1, ttl: Int64? = nil,
        subcapabilities: [String] = [], scope: String? = nil
    ) async throws -> TokenResponse {
        var actions: [CapabilityAction] = []
        for text in [action] + subcapabilities {
            do {
                actions.append(try CapabilityAction(parsing: text))
            } catch {
                throw EKeyClientError("bad action \(text): \(error.reason); write it as METHOD:/path, e.g. POST:/payments")
            }
        }
        let capability: Capability
        do {
            capability = try Capability(action: actions[0], scope: scope, limit: limit, subcapabilities: Array(actions.dropFirst()))
        } catch {
            throw EKeyClientError("\(error.reason); pass --limit between 1 and \(Capability.maximumLimit)")
        }
        return try await requestToken(TokenRequest(audience: audience, capability: capability, ttl: ttl, bind: bind))
    }

    /// Sends `POST /token` with `request` (docs/spec/issuer.md) and reads the 201 answer. Sends a
    /// DPoP proof when a DPoP key is configured, and the client certificate when one is.
    /// Errors carry the issuer's `error` and `error_description`.
    public func requestToken(_ request: TokenRequest) async throws -> TokenResponse {
        let endpoint = Self.join(configuration.issuerURL, "/token")
        var headers = [("content-type", "application/json")]
        if let key = configuration.dpopKey {
            headers.append(("DPoP", try key.proof(method: "POST", url: endpoint)))
        } else if request.bind == .dpop, request.jwk == nil, configuration.clientCertificateFile == nil {
            throw EKeyClientError("a DPoP-bound token needs a DPoP key: pass --key FILE (create one with `ekey keygen`)")
        }
        let response = try await send("POST", endpoint, headers: headers, body: request.jsonValue.serializedBytes())
        guard response.status == 201 else { throw response.clientError(defaultMessage: "the issuer refused the token request") }
        do {
            return try TokenResponse(body: response.body)
        } catch {
            throw EKeyClientError("the issuer's answer is not a token response: \(error.reason)")
        }
    }

    // MARK: Calls

    /// Calls `url` through the gateway with `token` and, for a DPoP-bound token, a fresh
    /// proof. When the gateway asks for a server nonce (`use_dpop_nonce`), retries once
    /// with a proof carrying its `DPoP-Nonce`.
    public func call(
        _ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, token: TokenResponse
    ) async throws -> EKeyResponse {
        let mode: BindingMode = token.tokenType.caseInsensitiveCompare("DPoP") == .orderedSame ? .dpop : .mtls
        return try await call(method, url, headers: headers, body: body, token: token.token, bind: mode)
    }

    /// Calls with a token string; `bind` says how it is bound.
    public func call(
        _ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, token: String, bind: BindingMode
    ) async throws -> EKeyResponse {
        let first = try await send(method, url, headers: try authorization(method, url, token: token, bind: bind, nonce: nil) + headers, body: body)
        guard bind == .dpop, first.status == 401, first.error == "use_dpop_nonce", let nonce = first.header("DPoP-Nonce") else {
            return first
        }
        return try await send(method, url, headers: try authorization(method, url, token: token, bind: bind, nonce: nonce) + headers, body: body)
    }

    /// The `Authorization` (and `DPoP`) headers for one call.
    public func authorization(_ method: String, _ url: String, token: String, bind: BindingMode, nonce: String? = nil) throws
        -> [(String, String)]
    {
        switch bind {
        case .mtls:
            return [("Authorization", "EKey \(token)")]
        case .dpop:
            guard let key = configuration.dpopKey else {
                throw EKeyClientError("a DPoP-bound token needs its DPoP key for the proof: pass --key FILE")
            }
            return [("Authorization", "DPoP \(token)"), ("DPoP", try key.proof(method: method, url: url, accessToken: token, nonce: nonce))]
        }
    }

    /// Sends one request as given: no token, no proof added.
    public func send(_ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> EKeyResponse {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method.uppercased())
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            if !request.headers.contains(name: "content-type") { request.headers.add(name: "content-type", value: "application/json") }
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(configuration.timeout.components.seconds))
        } catch {
            throw EKeyClientError("\(method) \(url) failed: \(error); check the URL and that the service runs (`ekey up`)")
        }
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return EKeyResponse(
            status: Int(response.status.code), reasonPhrase: response.status.reasonPhrase,
            version: "\(response.version.major).\(response.version.minor)",
            headers: response.headers.map { ($0.name, $0.value) }, body: Array(bytes.readableBytesView))
    }

    static func join(_ base: String, _ path: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) + path : base + path
    }
}

/// An HTTP answer.
public struct EKeyResponse: Sendable {
    public let status: Int
    public let reasonPhrase: String
    /// `1.1` or `2.0`.
    public let version: String
    public let headers: [(String, String)]
    public let body: [UInt8]

    public init(status: Int, reasonPhrase: String, version: String, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.reasonPhrase = reasonPhrase
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// The E-Key `error` code of an error body.
    public var error: String? { (try? StrictJSONParser().parseObject(body))?["error"]?.stringValue }

    /// The `error_description` of an error body.
    public var errorDescription: String? { (try? StrictJSONParser().parseObject(body))?["error_description"]?.stringValue }

    /// This answer as an ``EKeyClientError``.
    public func clientError(defaultMessage: String) -> EKeyClientError {
        EKeyClientError(
            status: status, error: error, errorDescription: errorDescription ?? (body.isEmpty ? defaultMessage : bodyText),
            retryAfter: header("Retry-After").flatMap { Int($0) })
    }
}
