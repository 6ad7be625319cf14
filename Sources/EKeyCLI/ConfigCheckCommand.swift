import ArgumentParser
import EKeyConfig
import Foundation

/// `ekey config`: configuration tools.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with the stack's YAML configuration.",
        subcommands: [ConfigCheckCommand.self]
    )
}

/// `ekey config check FILE`: validates a configuration without starting anything.
struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file (with the EKEY_* variables of this environment) without starting anything.",
        discussion: "Prints OK and the sections found, plus any warnings; or every error found, and exits with status 1."
    )

    @Argument(help: "The YAML file to check (default: $EKEY_CONFIG).")
    var file: String?

    @Flag(help: "Check the file alone, without applying EKEY_* environment variables.")
    var ignoreEnvironment = false

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        do {
            let path = try ConfigLoader.resolvePath(flag: file, environment: environment)
            let loaded = try ConfigLoader.load(path: path, environment: ignoreEnvironment ? [:] : environment)
            print("OK: \(path) (sections: \(loaded.config.sections.joined(separator: ", ")))")
            for warning in loaded.warnings {
                print("warning: \(warning)")
            }
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        } catch let errors as ConfigErrors {
            FileHandle.standardError.write(Data("\(errors)\n".utf8))
            throw ExitCode(1)
        }
    }
}
