import ArgumentParser
import EKeyGateway
import EKeyServer

/// Entry point of `ekey-gateway`: the E-Key verifier gateway (docs/spec/gateway.md).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-gateway",
        abstract: "Run the E-Key verifier gateway: checks token, DPoP/mTLS binding, capability and usage, then proxies.",
        discussion: "Reads the `store` and `gateway` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(Gateway.self, configFlag: config)
    }
}
