import ArgumentParser
import EKeyServer

/// Entry point of `ekey-issuer`: the E-Key issuer (POST /token).
@main
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey-issuer",
        abstract: "Run the E-Key issuer (POST /token).",
        version: BuildInfo.version
    )

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        throw ValidationError("ekey-issuer is not assembled yet in this release; see README.md for the status of each service.")
    }
}

