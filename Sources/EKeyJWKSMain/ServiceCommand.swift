import ArgumentParser
import EKeyJWKS
import EKeyServer

/// Entry point of `ekey-jwks`: the E-Key JWKS publisher (docs/spec/publisher.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-jwks",
        abstract: "Run the E-Key JWKS publisher: the key set for gateways, key registration for issuers.",
        discussion: "Reads the `store` and `jwks` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(Publisher.self, configFlag: config)
    }
}
