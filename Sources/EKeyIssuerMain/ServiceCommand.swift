import ArgumentParser
import EKeyIssuer
import EKeyServer

/// Entry point of `ekey-issuer`: the E-Key issuer (`POST /token`, docs/spec/issuer.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-issuer",
        abstract: "Run the E-Key issuer: POST /token for mTLS, registered DPoP and token-exchange clients.",
        discussion: "Reads the `store` and `issuer` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(Issuer.self, configFlag: config)
    }
}
