import ArgumentParser
import EKeyServer

/// Entry point of `ekey-gateway`: the E-Key verifier gateway.
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-gateway",
        abstract: "Run the E-Key verifier gateway.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        throw ValidationError("ekey-gateway is not assembled yet in this release; see README.md for the status of each service.")
    }
}

