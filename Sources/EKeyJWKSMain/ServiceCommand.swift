import ArgumentParser
import EKeyServer

/// Entry point of `ekey-jwks`: the E-Key JWKS publisher.
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-jwks",
        abstract: "Run the E-Key JWKS publisher.",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        throw ValidationError("ekey-jwks is not assembled yet in this release; see README.md for the status of each service.")
    }
}

