public import EKeyConfig
public import Logging
public import ServiceLifecycle

/// One E-Key service (`ekey-gateway`, `ekey-issuer`, `ekey-jwks`) as
/// ``ServiceStartup/run(_:configFlag:)`` builds, runs and stops it: its section of the
/// stack file, the service built from it, where it listens, and the parts it runs in one
/// `ServiceGroup`. What it opens while it is built goes to the ``StartupResources`` it is
/// given, which the start-up closes however the service ends.
public protocol ServiceAssembly: Sendable {
    /// The service's section of the stack file (such as `GatewayConfig`).
    associatedtype Settings: Sendable

    /// The section's name (`gateway`, `issuer`, `jwks`): the prefix of its config keys,
    /// such as `gateway.listen`. Given for a ``ServiceSection``.
    static var section: String { get }

    /// One line saying what the service does: the `--help` abstract of its executable.
    static var summary: String { get }

    /// The service's section of `config`; throws when the file has none. Given for a
    /// ``ServiceSection`` (`GatewayConfig`, ...).
    static func settings(from config: StackConfig) throws -> Settings

    /// Builds the service from its section and the rest of the stack file (`store`).
    /// Registers whatever it opens that must be closed (stores, HTTP clients) with
    /// `resources` as soon as it is opened; throws, naming the key and the fix, when the
    /// configuration cannot be used.
    static func assemble(_ settings: Settings, config: StackConfig, logger: Logger, resources: StartupResources) throws -> Self

    /// Where the service listens: its main listener and its admin listener.
    var listeners: ServiceListeners { get }

    /// The parts to run in one group, listeners included; `onRunning` reports each
    /// listener's bound port by role (such as `gateway` and `admin`).
    func services(onRunning: @escaping @Sendable (_ role: String, _ port: Int) async -> Void) throws -> [any Service]
}

extension ServiceAssembly where Settings: ServiceSection {
    /// The name of the service's section of the stack file (``ServiceSection/name``).
    public static var section: String { Settings.name }

    /// The service's section of `config` (``StackConfig/require(_:)``).
    public static func settings(from config: StackConfig) throws -> Settings {
        try config.require(Settings.self)
    }
}

extension ServiceAssembly {
    /// The executable's name (`ekey-gateway`): the label of its logs, the service name of
    /// its traces and the prefix of its messages on stderr.
    public static var name: String { "ekey-\(section)" }

    /// The main and admin listeners, named by their keys (`<section>.listen` and
    /// `<section>.admin_listen`) in the message they fail with.
    public func namedListeners(main: any Service, admin: any Service) -> [any Service] {
        [
            NamedListener(main, key: "\(Self.section).listen", host: listeners.host, port: listeners.port),
            NamedListener(admin, key: "\(Self.section).admin_listen", host: listeners.adminHost, port: listeners.adminPort),
        ]
    }
}
