import ArgumentParser
import EKeyServer

/// The `ekey` command line: local stack, PKI, keys, tokens, proofs, calls, config check.
struct EKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ekey",
        abstract: "E-Key: short-lived, proof-bound capability keys for legacy APIs.",
        version: BuildInfo.version
    )
}

await EKeyCommand.main()
