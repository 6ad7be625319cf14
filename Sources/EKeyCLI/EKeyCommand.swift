import ArgumentParser
import EKeyServer

/// The `ekey` command line: local stack, PKI, keys, tokens, proofs, calls, config check.
@main
struct EKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey",
        abstract: "E-Key: short-lived, proof-bound capability keys for legacy APIs.",
        discussion: """
            Start here: `ekey up` runs the whole stack locally and prints a command to try.
            Every subcommand has --help.
            """,
        version: BuildInfo.version,
        subcommands: [
            UpCommand.self, CallCommand.self, TokenCommand.self, InspectCommand.self, KeygenCommand.self, ProofCommand.self,
            PKICommand.self, ConfigCommand.self, JWKSCommand.self, DemoAPICommand.self,
        ]
    )
}
