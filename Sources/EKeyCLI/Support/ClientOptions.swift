import ArgumentParser
import EKeyClient
import EKeyConfig
import EKeyProtocol
import Foundation

/// Where the issuer is and who we are; defaults come from the `ekey up` folder.
struct ClientOptions: ParsableArguments {
    @Option(help: "The `ekey up` folder: its stack.yaml gives the issuer URL, CA, demo key and audiences.")
    var dir = StackLayout.defaultDirectory

    @Option(help: "Issuer URL (default: issuer.issuer_url of DIR/stack.yaml).")
    var issuer: String?

    @Option(help: "PEM CA to trust (default: DIR/pki/ca.crt when present, else the system roots).")
    var ca: String?

    @Option(help: "Binding: DPoP (proof of a key you hold) or mTLS (your client certificate).")
    var bind: String = "DPoP"

    @Option(help: "DPoP key, PEM (default: DIR/demo-dpop.key, registered with the `ekey up` issuer).")
    var key: String?

    @Option(help: "Client certificate, PEM, for mTLS (default for --bind mTLS: DIR/pki/workload.crt).")
    var cert: String?

    @Option(help: "Client certificate's private key, PEM (default for --bind mTLS: DIR/pki/workload.key).")
    var certKey: String?

    var layout: StackLayout { StackLayout(dir) }

    func bindingMode() throws -> BindingMode {
        switch bind.lowercased() {
        case "dpop": return .dpop
        case "mtls": return .mtls
        default: throw CLIError("--bind \(bind): use DPoP or mTLS")
        }
    }

    /// The stack config, if the folder has one.
    func stack() throws -> StackConfig? {
        layout.exists ? try layout.load() : nil
    }

    /// The client configuration these options describe.
    func clientConfiguration(stack: StackConfig?) throws -> EKeyClient.Configuration {
        guard let issuerURL = issuer ?? stack?.issuer?.issuerURL.absoluteString else {
            throw CLIError("no issuer: pass --issuer https://HOST:PORT, or run `ekey up` and pass --dir to its folder (default .ekey)")
        }
        let mode = try bindingMode()
        let caFile = ca ?? (FileManager.default.fileExists(atPath: layout.caPath) ? layout.caPath : nil)
        var certificate = cert
        var certificateKey = certKey
        if mode == .mtls, certificate == nil {
            certificate = layout.pki("workload.crt")
            certificateKey = certificateKey ?? layout.pki("workload.key")
            guard FileManager.default.fileExists(atPath: certificate!) else {
                throw CLIError("--bind mTLS needs a client certificate: pass --cert FILE --cert-key FILE (or run `ekey up`/`ekey pki init --dir \(layout.pkiDirectory)`)")
            }
        }
        var dpopKey: DPoPKey?
        if mode == .dpop {
            let path = key ?? layout.demoKeyPath
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("DPoP key \(path) not found: create one with `ekey keygen --out FILE` and pass --key FILE, or run `ekey up`")
            }
            dpopKey = try DPoPKey.load(path: path)
        }
        return EKeyClient.Configuration(
            issuerURL: issuerURL, caFile: caFile, clientCertificateFile: certificate, clientKeyFile: certificateKey, dpopKey: dpopKey)
    }

    /// The audience for a gateway URL: the `audience` of the gateway route whose
    /// `public_origin` and `prefix` match it, else the first template audience.
    static func audience(for url: String, stack: StackConfig?) -> String? {
        guard let stack else { return nil }
        if let components = URLComponents(string: url), let routes = stack.gateway?.routes {
            let path = components.path.isEmpty ? "/" : components.path
            let origin = "\(components.scheme ?? "https")://\(components.host ?? "")\(components.port.map { ":\($0)" } ?? "")".lowercased()
            let matching = routes.filter { route in
                let publicOrigin = route.publicOrigin.absoluteString.lowercased()
                let base = publicOrigin.hasSuffix("/") ? String(publicOrigin.dropLast()) : publicOrigin
                guard base == origin else { return false }
                let prefix = route.prefix
                return prefix == "/" || path == prefix || path.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/")
            }
            if let best = matching.max(by: { $0.prefix.count < $1.prefix.count }) { return best.audience }
        }
        return stack.issuer?.templates.first?.audiences.first
    }
}
