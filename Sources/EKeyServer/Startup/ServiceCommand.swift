import ArgumentParser

/// The command line of a service executable (`ekey-gateway`, `ekey-issuer`, `ekey-jwks`):
/// `--config FILE` (or `EKEY_CONFIG`), `--help` and `--version`; running it is
/// ``ServiceStartup/run(_:configFlag:)``. Each executable's `main.swift` is one call,
/// ``ServiceStartup/main(_:)``.
struct ServiceCommand<Assembly: ServiceAssembly>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Assembly.name,
            abstract: Assembly.summary,
            discussion:
                "Reads the `store` and `\(Assembly.section)` sections of the stack's YAML file; any key can be overridden with EKEY_<PATH>.",
            version: BuildInfo.version
        )
    }

    @Option(name: .long, help: "The stack's YAML configuration file (or set EKEY_CONFIG).")
    var config: String?

    func run() async throws {
        await ServiceStartup.run(Assembly.self, configFlag: config)
    }
}

extension ServiceStartup {
    /// The `main` of a service executable: parses its command line (`--config FILE`,
    /// `--help`, `--version`) and runs the service (``run(_:configFlag:)``).
    ///
    /// ```swift
    /// await ServiceStartup.main(Gateway.self)
    /// ```
    public static func main<Assembly: ServiceAssembly>(_ assembly: Assembly.Type) async {
        await ServiceCommand<Assembly>.main()
    }
}
