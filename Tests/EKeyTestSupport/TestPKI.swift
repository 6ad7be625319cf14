public import AsyncHTTPClient
public import EKeyConfig
public import EKeyServer
public import NIOCore
public import NIOSSL

/// The development PKI as the live tests use it: written to a temporary folder, with
/// clients that trust it.
extension TemporaryFiles {
    /// A fresh folder holding a new development CA (`ca.crt`) and a server certificate for
    /// `localhost` and 127.0.0.1 (`server.crt`, `server.key`). The CA is returned too, for
    /// the client certificates a test writes with `write(name, pki.issueClient(...))`.
    public static func withDevelopmentPKI(prefix: String = "ekey-test") throws -> (files: TemporaryFiles, pki: DevelopmentPKI) {
        let files = try TemporaryFiles(prefix: prefix)
        let pki = try DevelopmentPKI()
        try files.write("ca.crt", pki.authority.certificatePEM)
        try files.write("server", pki.issueServer(commonName: "localhost", dnsNames: ["localhost"]))
        return (files, pki)
    }

    /// A service's `tls:` in a stack file written to this folder: the server certificate,
    /// client certificates optional and checked against the CA.
    public static let serverTLSYAML = "{cert: server.crt, key: server.key, client_ca: ca.crt, client_auth: optional}"

    /// ``serverTLSYAML`` with absolute paths, for a stack file that may sit elsewhere.
    public var absoluteServerTLSYAML: String {
        "{cert: \(path("server.crt")), key: \(path("server.key")), client_ca: \(path("ca.crt")), client_auth: optional}"
    }

    /// An HTTPS client trusting `ca.crt` and presenting `<certificate>.crt` and `.key` (or no
    /// certificate); HTTP/2 or HTTP/1.1 by ALPN, HTTP/1.1 only with `http1`. The caller
    /// shuts it down.
    public func httpsClient(
        certificate: String?, http1: Bool = false, readTimeout: TimeAmount = .seconds(10), minimumVersion: TLSMinimumVersion = .tls13,
        maximumVersion: TLSVersion? = nil
    ) throws -> HTTPClient {
        var tls = try TLSSetup.client(
            caFile: path("ca.crt"), certificateFile: certificate.map { path("\($0).crt") }, keyFile: certificate.map { path("\($0).key") },
            minimumVersion: minimumVersion)
        tls.maximumTLSVersion = maximumVersion
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(3), read: readTimeout))
        configuration.httpVersion = http1 ? .http1Only : .automatic
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
