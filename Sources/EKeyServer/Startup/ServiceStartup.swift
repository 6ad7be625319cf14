public import EKeyConfig
import Foundation
public import Logging
public import NIOSSL

/// What every service does before it serves: JSON logs, the config file (with `EKEY_*`
/// overrides), and a clear message plus a non-zero exit when anything is wrong.
public enum ServiceStartup {
    /// Exit status for a start-up failure (bad config, unreadable TLS files).
    public static let configurationFailureStatus: Int32 = 2

    /// Bootstraps JSON logging, loads the configuration named by `--config` or
    /// `EKEY_CONFIG`, logs its warnings, and runs `body`. Any error before or while the
    /// service starts is printed to stderr and logged, and the process exits with
    /// ``configurationFailureStatus``; after a graceful shutdown it returns (exit 0).
    public static func run(
        service: String, configFlag: String?,
        _ body: (LoadedConfig, Logger) async throws -> Void
    ) async {
        JSONLogHandler.bootstrap(level: logLevel(from: ProcessInfo.processInfo.environment["EKEY_LOG_LEVEL"]))
        let logger = Logger(label: service)
        let environment = ProcessInfo.processInfo.environment
        let loaded: LoadedConfig
        do {
            let path = try ConfigLoader.resolvePath(flag: configFlag, environment: environment)
            loaded = try ConfigLoader.load(path: path, environment: environment)
        } catch {
            fail(service: service, logger: logger, "\(error)")
        }
        loaded.log(to: logger)
        do {
            try await body(loaded, logger)
        } catch {
            fail(service: service, logger: logger, "\(error)")
        }
    }

    static func fail(service: String, logger: Logger, _ message: String) -> Never {
        logger.critical("\(service) cannot start: \(message)")
        FileHandle.standardError.write(Data("\(service): \(message)\n".utf8))
        exit(configurationFailureStatus)
    }

    static func logLevel(from text: String?) -> Logger.Level {
        text.flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    }

    /// The server TLS configuration of a `tls` section, or `nil` for `tls: none` (the
    /// service warns loudly when it starts its plaintext listener).
    public static func serverTLS(_ settings: TLSSettings) throws -> TLSConfiguration? {
        guard let files = settings.files else {
            return nil
        }
        return try TLSSetup.server(
            certificateFile: files.cert, keyFile: files.key, clientCAFile: files.clientCA, clientCertificates: files.clientAuth,
            minimumVersion: files.minVersion)
    }
}
