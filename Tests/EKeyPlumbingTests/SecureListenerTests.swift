import AsyncHTTPClient
import Crypto
import EKeyConfig
import EKeyServer
import EKeyTestSupport
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// The TLS listener over real TLS 1.3 and real HTTP/2: client certificates per
/// `client_auth`, the caller's identity for h2 streams and HTTP/1.1 alike.
struct SecureListenerTests {
    let files: TemporaryFiles
    let pki: DevelopmentPKI
    let workloadID = "spiffe://example.org/checkout"
    let workloadCertificateSHA256: String

    init() throws {
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        let workload = try pki.issueClient(commonName: "checkout", spiffeID: workloadID)
        try files.write("workload", workload)
        workloadCertificateSHA256 = SHA256.hash(data: workload.certificateDER).map { String(format: "%02x", $0) }.joined()
        try files.write("plain", pki.issueClient(commonName: "legacy-batch", spiffeID: nil))
        let stranger = try DevelopmentPKI(name: "Somebody else's CA")
        try files.write("stranger", stranger.issueClient(commonName: "intruder", spiffeID: "spiffe://example.org/checkout"))
    }

    func makeApp(_ mode: ClientAuthMode, minimum: TLSMinimumVersion = .tls13, onRunning: @escaping @Sendable (Int) async -> Void) throws
        -> some ApplicationProtocol
    {
        let router = Router(context: EKeyRequestContext.self)
        router.get("/whoami") { request, context -> String in
            let identity = await context.peerIdentity()
            let hash = identity.map { $0.certificateSHA256.map { String(format: "%02x", $0) }.joined() } ?? "-"
            return "\(identity?.identity ?? "anonymous") \(hash)"
        }
        let tls = try TLSSetup.server(
            certificateFile: files.path("server.crt"), keyFile: files.path("server.key"), clientCAFile: files.path("ca.crt"),
            clientCertificates: mode, minimumVersion: minimum)
        return Application(
            router: router, server: .ekeySecure(tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { await onRunning($0.localAddress!.port!) })
    }

    func client(certificate: String?, http1: Bool = false, maximumTLS: TLSVersion? = nil) throws -> HTTPClient {
        try files.httpsClient(certificate: certificate, http1: http1, readTimeout: .seconds(3), minimumVersion: .tls12, maximumVersion: maximumTLS)
    }

    func get(_ client: HTTPClient, port: Int) async throws -> (HTTPVersion, String) {
        do {
            let response = try await client.execute(HTTPClientRequest(url: "https://localhost:\(port)/whoami"), timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 4096)
            try await client.shutdown()
            return (response.version, String(buffer: body))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @Test func spiffeIdentityAndCertificateHashOverHTTP2AndHTTP1() async throws {
        defer { files.remove() }
        let expectedHash = workloadCertificateSHA256
        try await LiveServer.with({ try makeApp(.required, onRunning: $0) }) { port in
            let (version2, body2) = try await get(try client(certificate: "workload"), port: port)
            #expect(version2 == .http2)
            #expect(body2 == "\(workloadID) \(expectedHash)")
            let (version1, body1) = try await get(try client(certificate: "workload", http1: true), port: port)
            #expect(version1 == .http1_1)
            #expect(body1 == body2)
            let (_, plainBody) = try await get(try client(certificate: "plain"), port: port)
            #expect(plainBody.hasPrefix("x509:legacy-batch "))
        }
    }

    /// An internal client's certificate changes on disk: after `reload()` its requests (each
    /// naming `ClientTLS.configuration`, as the key-set and registration clients do) present
    /// the new one on one and the same `HTTPClient`; a key that does not match is refused.
    @Test func anInternalClientPresentsItsReloadedCertificate() async throws {
        defer { files.remove() }
        try files.write("internal", pki.issueClient(commonName: "first", spiffeID: "spiffe://example.org/ekey/first"))
        let tls = try ClientTLS(
            caFile: files.path("ca.crt"), certificateFile: files.path("internal.crt"), keyFile: files.path("internal.key"),
            configKey: "issuer.publisher")
        let client = InternalHTTPClient.make(tls: tls)
        func whoami(_ port: Int) async throws -> String {
            var request = HTTPClientRequest(url: "https://localhost:\(port)/whoami")
            request.tlsConfiguration = tls.configuration
            let response = try await client.execute(request, timeout: .seconds(5))
            return String(buffer: try await response.body.collect(upTo: 4096))
        }
        try await LiveServer.with({ try makeApp(.required, onRunning: $0) }) { port in
            #expect(try await whoami(port).hasPrefix("spiffe://example.org/ekey/first "))
            #expect(tls.reload() == .unchanged)

            let second = try pki.issueClient(commonName: "second", spiffeID: "spiffe://example.org/ekey/second")
            _ = try files.write("internal.crt", second.certificatePEM)
            let outcome = tls.reload()
            guard case .refused(let reason) = outcome else {
                Issue.record("a certificate without its key was loaded: \(outcome)")
                return
            }
            #expect(reason.contains("issuer.publisher"))
            #expect(try await whoami(port).hasPrefix("spiffe://example.org/ekey/first "))

            try files.write("internal", second)
            #expect(tls.reload() == .reloaded)
            #expect(try await whoami(port).hasPrefix("spiffe://example.org/ekey/second "))
        }
        try await client.shutdown()
    }

    @Test func requiredModeRefusesClientsWithoutOrWithForeignCertificates() async throws {
        defer { files.remove() }
        try await LiveServer.with({ try makeApp(.required, onRunning: $0) }) { port in
            await #expect(throws: (any Error).self) { _ = try await get(try client(certificate: nil), port: port) }
            await #expect(throws: (any Error).self) { _ = try await get(try client(certificate: "stranger"), port: port) }
        }
    }

    @Test func optionalModeIsAnonymousWithoutACertificateButFailsAForeignOne() async throws {
        defer { files.remove() }
        try await LiveServer.with({ try makeApp(.optional, onRunning: $0) }) { port in
            let (_, anonymous) = try await get(try client(certificate: nil), port: port)
            #expect(anonymous == "anonymous -")
            await #expect(throws: (any Error).self) { _ = try await get(try client(certificate: "stranger"), port: port) }
            let (_, known) = try await get(try client(certificate: "workload"), port: port)
            #expect(known.hasPrefix(workloadID))
        }
    }

    @Test func tls12IsRefusedByDefaultAndAcceptedWhenConfigured() async throws {
        defer { files.remove() }
        _ = try await LiveServer.with({ try makeApp(.optional, onRunning: $0) }) { port in
            await #expect(throws: (any Error).self) { _ = try await get(try client(certificate: nil, maximumTLS: .tlsv12), port: port) }
        }
        try await LiveServer.with({ try makeApp(.optional, minimum: .tls12, onRunning: $0) }) { port in
            let (_, body) = try await get(try client(certificate: nil, maximumTLS: .tlsv12), port: port)
            #expect(body == "anonymous -")
        }
    }

    @Test func loadingErrorsNameTheFile() throws {
        defer { files.remove() }
        let missing = files.path("nope.crt")
        let error = #expect(throws: TLSSetupError.self) {
            try TLSSetup.server(certificateFile: missing, keyFile: files.path("server.key"), clientCAFile: nil, clientCertificates: .none)
        }
        #expect(error?.description.contains(missing) == true)
        let garbage = try files.write("garbage.key", "not a key")
        let keyError = #expect(throws: TLSSetupError.self) {
            try TLSSetup.server(certificateFile: files.path("server.crt"), keyFile: garbage, clientCAFile: nil, clientCertificates: .none)
        }
        #expect(keyError?.description.contains("garbage.key") == true)
        #expect(throws: TLSSetupError.self) {
            try TLSSetup.server(certificateFile: files.path("server.crt"), keyFile: files.path("server.key"), clientCAFile: nil, clientCertificates: .required)
        }
    }

    @Test func sec1AndPKCS8KeysBothLoad() throws {
        defer { files.remove() }
        let issued = try pki.issueServer(commonName: "x", dnsNames: ["x"])
        let pkcs8 = try files.write("pkcs8.key", issued.privateKeyPEM)
        #expect(issued.privateKeyPEM.contains("BEGIN PRIVATE KEY"))
        #expect(throws: Never.self) { try TLSSetup.loadPrivateKey(pkcs8, role: "tls.key") }
        let sec1 = files.path("sec1.key")
        try ExternalCommand("openssl", ["ec", "-in", pkcs8, "-out", sec1]).run()
        #expect(try String(contentsOfFile: sec1, encoding: .utf8).contains("BEGIN EC PRIVATE KEY"))
        #expect(throws: Never.self) { try TLSSetup.loadPrivateKey(sec1, role: "tls.key") }
    }
}

