import ArgumentParser
import EKeyClient
import EKeyProtocol
import EKeyServer
import Foundation

/// `ekey pki`: the development PKI.
struct PKICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Create the development PKI (CA, server and SPIFFE client certificates).",
        subcommands: [PKIInitCommand.self]
    )
}

/// `ekey pki init --dir DIR`: a CA, one server certificate for every service, and the
/// SPIFFE client certificates of the issuer, the gateway, an admin and a demo workload.
struct PKIInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a development CA, server certificate and SPIFFE client certificates.",
        discussion: """
            Files written to DIR (private keys mode 0600, PEM):
              ca.crt ca.key                          the CA every service and client trusts
              server.crt server.key                  TLS server certificate of ekey-jwks, ekey-issuer, ekey-gateway
                                                     (SANs: localhost, 127.0.0.1, ::1 and every --host)
              issuer-client.crt issuer-client.key    spiffe://TD/ekey/issuer  (registers keys with the publisher)
              gateway-client.crt gateway-client.key  spiffe://TD/ekey/gateway (fetches the JWKS)
              admin.crt admin.key                    spiffe://TD/ekey/admin   (ekey jwks export|import)
              workload.crt workload.key              spiffe://TD/demo/checkout (a demo workload, mTLS tokens)
              dpop-nonce.key                         48 random bytes: gateway.dpop.nonce_secret_file
            For development only: the CA key sits next to the certificates.
            """
    )

    @Option(help: "The folder to write to (created if missing).")
    var dir: String

    @Option(help: "SPIFFE trust domain of the client certificates.")
    var trustDomain = "example.org"

    @Option(name: .customLong("host"), help: "Extra server certificate name or IP (repeatable), e.g. --host ekey-issuer --host ekey-gateway.")
    var hosts: [String] = []

    @Option(help: "Certificate lifetime in days.")
    var days = 365

    @Flag(help: "Replace existing files.")
    var force = false

    func run() throws {
        do {
            let written = try PKIWriter(directory: dir, trustDomain: trustDomain, hosts: hosts, days: days).write(force: force)
            print("wrote \(written.count) files to \(dir): \(written.joined(separator: " "))")
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Writes the development PKI; shared by `ekey pki init` and `ekey up`.
struct PKIWriter {
    static let certificateNames = ["ca", "server", "issuer-client", "gateway-client", "admin", "workload"]
    static let allFiles = certificateNames.flatMap { ["\($0).crt", "\($0).key"] } + ["dpop-nonce.key"]

    let directory: String
    let trustDomain: String
    let hosts: [String]
    let days: Int

    func spiffeID(_ path: String) -> String { "spiffe://\(trustDomain)/\(path)" }

    /// Writes every file; refuses to replace existing ones unless `force`. Returns the names.
    @discardableResult
    func write(force: Bool) throws -> [String] {
        let manager = FileManager.default
        let existing = Self.allFiles.filter { manager.fileExists(atPath: path($0)) }
        if !existing.isEmpty, !force {
            throw CLIError("\(directory) already holds \(existing.joined(separator: ", ")); pass --force to replace them, or use another --dir")
        }
        guard days > 0 else { throw CLIError("--days must be at least 1") }
        guard trustDomain.range(of: "^[a-z0-9._-]+$", options: .regularExpression) != nil else {
            throw CLIError("--trust-domain \(trustDomain) is not a SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')")
        }
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = try DevelopmentPKI(validity: Date(timeIntervalSinceNow: -3600)...Date(timeIntervalSinceNow: Double(days) * 86400))
        var dnsNames = ["localhost"]
        var addresses = ["127.0.0.1", "::1"]
        for host in hosts where !host.isEmpty {
            if DevelopmentPKI.ipAddressBytes(host) != nil {
                if !addresses.contains(host) { addresses.append(host) }
            } else if !dnsNames.contains(host) {
                dnsNames.append(host)
            }
        }
        let issued: [(String, DevelopmentPKI.Issued)] = [
            ("ca", pki.authority),
            ("server", try pki.issueServer(commonName: "localhost", dnsNames: dnsNames, ipAddresses: addresses)),
            ("issuer-client", try pki.issueClient(commonName: "ekey-issuer", spiffeID: spiffeID("ekey/issuer"))),
            ("gateway-client", try pki.issueClient(commonName: "ekey-gateway", spiffeID: spiffeID("ekey/gateway"))),
            ("admin", try pki.issueClient(commonName: "ekey-admin", spiffeID: spiffeID("ekey/admin"))),
            ("workload", try pki.issueClient(commonName: "checkout", spiffeID: spiffeID("demo/checkout"))),
        ]
        for (name, item) in issued {
            try SecretFile.write(Array(item.privateKeyPEM.utf8) + (item.privateKeyPEM.hasSuffix("\n") ? [] : [0x0a]), to: path("\(name).key"), overwrite: true)
            let certificate = path("\(name).crt")
            try? manager.removeItem(atPath: certificate)
            guard manager.createFile(atPath: certificate, contents: Data(item.certificatePEM.utf8), attributes: [.posixPermissions: 0o644]) else {
                throw CLIError("cannot write \(certificate); check that \(directory) is writable")
            }
        }
        try SecretFile.write(RandomBytes.make(48), to: path("dpop-nonce.key"), overwrite: true)
        return Self.allFiles
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
}
