import ArgumentParser
import EKeyClient
import EKeyConfig
import Foundation

/// `ekey jwks export|import`: back up and restore the publisher's key set (admin mTLS).
struct JWKSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks",
        abstract: "Export or import the JWKS publisher's registered keys (admin mTLS, for disaster recovery).",
        subcommands: [JWKSExportCommand.self, JWKSImportCommand.self]
    )
}

/// Options shared by `jwks export` and `jwks import`.
struct AdminOptions: ParsableArguments {
    @Option(help: "The `ekey up` folder (its stack.yaml gives the publisher's port; pki/ the admin certificate).")
    var dir = StackLayout.defaultDirectory

    @Option(help: "Publisher URL (default: https://localhost:<jwks.listen port> from DIR/stack.yaml).")
    var url: String?

    @Option(help: "PEM CA (default DIR/pki/ca.crt).")
    var ca: String?

    @Option(help: "Admin client certificate, an identity in jwks.admins (default DIR/pki/admin.crt).")
    var cert: String?

    @Option(help: "Its private key (default DIR/pki/admin.key).")
    var certKey: String?

    func endpoint() throws -> String {
        if let url { return (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/internal/v1/keys" }
        let layout = StackLayout(dir)
        guard let port = try layout.load().jwks?.listen.port else {
            throw CLIError("\(layout.configPath) has no jwks section: pass --url https://HOST:PORT")
        }
        return "https://localhost:\(port)/internal/v1/keys"
    }

    func configuration() -> EKeyClient.Configuration {
        let layout = StackLayout(dir)
        return EKeyClient.Configuration(
            issuerURL: "", caFile: ca ?? layout.caPath, clientCertificateFile: cert ?? layout.pki("admin.crt"),
            clientKeyFile: certKey ?? layout.pki("admin.key"))
    }
}

/// `ekey jwks export`.
struct JWKSExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "GET /internal/v1/keys: print (or write) every registered key with its metadata.")

    @OptionGroup var admin: AdminOptions

    @Option(name: [.customShort("o"), .long], help: "Write to FILE instead of stdout.")
    var out: String?

    func run() async throws {
        try await reportingErrors {
            let endpoint = try admin.endpoint()
            let response = try await EKeyClient.withClient(admin.configuration()) { try await $0.send("GET", endpoint) }
            guard response.status == 200 else {
                throw CLIError("\(response.clientError(defaultMessage: "export refused")); the certificate must be an identity in jwks.admins")
            }
            if let out {
                try SecretFile.write(response.body, to: out, overwrite: true)
                printError("wrote \(out)")
            } else {
                print(response.bodyText)
            }
        }
    }
}

/// `ekey jwks import`.
struct JWKSImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "PUT /internal/v1/keys: load a key set written by `ekey jwks export`.")

    @OptionGroup var admin: AdminOptions

    @Argument(help: "The exported file, or - for stdin.")
    var file: String

    func run() async throws {
        try await reportingErrors {
            let body: [UInt8]
            if file == "-" {
                body = Array(FileHandle.standardInput.readDataToEndOfFile())
            } else {
                guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
                body = Array(data)
            }
            let endpoint = try admin.endpoint()
            let response = try await EKeyClient.withClient(admin.configuration()) { try await $0.send("PUT", endpoint, body: body) }
            guard (200..<300).contains(response.status) else {
                throw CLIError("\(response.clientError(defaultMessage: "import refused")); the certificate must be an identity in jwks.admins")
            }
            print("imported: \(response.status) \(response.bodyText)")
        }
    }
}
