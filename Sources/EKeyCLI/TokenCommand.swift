import ArgumentParser
import EKeyClient
import EKeyConfig
import EKeyProtocol
import Foundation

/// `ekey token`: ask the issuer for a token and print it.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Ask the issuer for a token for one capability and print it.",
        discussion: """
            Authenticates with the DPoP key (registered in issuer.clients) and/or the client certificate.
              ekey token --action POST:/payments                       # DPoP, DIR/demo-dpop.key
              ekey token --action POST:/payments --bind mTLS           # DIR/pki/workload.crt
              ekey token --action POST:/payments --json | jq .
            """
    )

    @Option(help: "The action, METHOD:/path (e.g. POST:/payments).")
    var action: String

    @Option(name: .customLong("subcap"), help: "A further action (repeatable).")
    var subcapabilities: [String] = []

    @Option(help: "Scope string to carry in cap.scope.")
    var scope: String?

    @Option(help: "Audience (default: the first audience of the stack's templates).")
    var audience: String?

    @Option(help: "How many calls the token allows.")
    var limit = 1

    @Option(help: "Lifetime in seconds (1-60; default: the policy's maximum).")
    var ttl: Int64?

    @Flag(help: "Print the issuer's whole JSON answer instead of the token alone.")
    var json = false

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await reportingErrors {
            let stack = try client.stack()
            guard let audience = audience ?? stack?.issuer?.templates.first?.audiences.first else {
                throw CLIError("no audience: pass --audience (e.g. https://api.example.com)")
            }
            let mode = try client.bindingMode()
            let response = try await EKeyClient.withClient(try client.clientConfiguration(stack: stack)) { sdk in
                try await sdk.token(
                    action: action, audience: audience, bind: mode, limit: limit, ttl: ttl, subcapabilities: subcapabilities, scope: scope)
            }
            print(json ? response.jsonValue.serialized() : response.token)
        }
    }
}

/// `ekey proof`: make a DPoP proof.
struct ProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proof",
        abstract: "Make a DPoP proof (RFC 9449) for one request and print it.",
        discussion: "  ekey proof --key my.key --method POST --url https://localhost:9443/payments --token @t.jwt"
    )

    @Option(help: "The DPoP key, PEM (create one with `ekey keygen`).")
    var key: String

    @Option(help: "HTTP method (htm).")
    var method = "POST"

    @Option(help: "Request URL (htu); query and fragment are dropped.")
    var url: String

    @Option(help: "The access token (or @FILE) the request carries: its hash goes into ath.")
    var token: String?

    @Option(help: "A server nonce (DPoP-Nonce).")
    var nonce: String?

    @Option(help: "iat, epoch seconds (default now).")
    var issuedAt: Int64?

    func run() throws {
        do {
            let dpopKey = try DPoPKey.load(path: key)
            print(try dpopKey.proof(method: method, url: url, accessToken: try token.map(readArgument), nonce: nonce, issuedAt: issuedAt))
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `ekey keygen`: create a DPoP key.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create a DPoP key (PEM PKCS#8, mode 0600) and print its thumbprint and public JWK.",
        discussion: """
            Register the thumbprint with the issuer (issuer.clients: [{id: NAME, jkt: THUMBPRINT}]) to
            authenticate with the key, or use it for token exchange.
            """
    )

    @Option(help: "Where to write the private key.")
    var out: String

    @Option(help: "ES256 (P-256) or EdDSA (Ed25519).")
    var alg = "ES256"

    @Flag(help: "Replace an existing file.")
    var force = false

    func run() throws {
        do {
            guard let algorithm = JWSAlgorithm.allCases.first(where: { $0.rawValue.caseInsensitiveCompare(alg) == .orderedSame }) else {
                throw CLIError("--alg \(alg): use ES256 or EdDSA")
            }
            let key = DPoPKey.generate(algorithm)
            try key.write(to: out, overwrite: force)
            print("wrote \(out) (\(algorithm.rawValue), mode 0600)")
            print("thumbprint: \(key.thumbprint)")
            print("jwk: \(key.publicJWK.jsonValue.serialized())")
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
