import CEKeyProcess
public import EKeyConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import Logging
public import NIOSSL

/// What every service does before it serves: JSON logs, the config file (with `EKEY_*`
/// overrides), and a clear message plus a non-zero exit when anything is wrong.
public enum ServiceStartup {
    /// Exit status for a start-up failure (bad config, unreadable TLS files).
    public static let configurationFailureStatus: Int32 = 2

    /// Bootstraps JSON logging, loads the configuration named by `--config` or
    /// `EKEY_CONFIG`, logs its warnings, and runs `body`, which registers what it opens
    /// (HTTP clients, stores) with the ``StartupResources`` it is given. When `body`
    /// returns or throws, those resources are closed, last opened first. An error before
    /// or while the service starts is then printed to stderr (one line) and logged, and the
    /// process exits with ``configurationFailureStatus``; after a graceful shutdown it
    /// returns (exit 0).
    public static func run(
        service: String, configFlag: String?,
        _ body: (LoadedConfig, Logger, StartupResources) async throws -> Void
    ) async {
        runTasksOnEventLoops()
        JSONLogHandler.bootstrap(level: logLevel(from: ProcessInfo.processInfo.environment["EKEY_LOG_LEVEL"]))
        let logger = Logger(label: service)
        exitWithParent(service: service, environment: ProcessInfo.processInfo.environment, logger: logger)
        // EKEY_PARENT_PID is read above; it is not a config override.
        let environment = ProcessInfo.processInfo.environment.filter { $0.key != parentVariable }
        let loaded: LoadedConfig
        do {
            let path = try ConfigLoader.resolvePath(flag: configFlag, environment: environment)
            loaded = try ConfigLoader.load(path: path, environment: environment)
        } catch {
            fail(service: service, logger: logger, "\(error)")
        }
        loaded.log(to: logger)
        let resources = StartupResources()
        do {
            try await body(loaded, logger, resources)
        } catch {
            await resources.closeAll()
            fail(service: service, logger: logger, "\(error)")
        }
        await resources.closeAll()
    }

    /// Makes NIO's event loops the executor of Swift concurrency for the whole process,
    /// so a request's handler task runs on the same threads as its connection instead of
    /// hopping to a separate thread pool and back at every `await` (measured in
    /// loadtest/RESULTS.md). Runs once; later calls do nothing.
    static func runTasksOnEventLoops() {
        tookOverConcurrency.withLockedValue { done in
            if !done {
                NIOSingletons.groupLoopCountSuggestion = eventLoopCount(coreCount: System.coreCount, allowedCPUs: Int(ekey_allowed_cpu_count()))
                done = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            }
        }
    }

    private static let tookOverConcurrency = NIOLockedValueBox(false)

    /// One event loop per CPU the process may use. SwiftNIO's count follows cgroup quotas
    /// and cpusets (containers, Kubernetes CPU limits) but not the affinity mask of
    /// `taskset`; more loops than CPUs only add thread switches to every request.
    static func eventLoopCount(coreCount: Int, allowedCPUs: Int) -> Int {
        allowedCPUs > 0 ? max(1, min(coreCount, allowedCPUs)) : max(1, coreCount)
    }

    /// The variable `ekey up` sets to its own process ID in each child's environment.
    public static let parentVariable = "EKEY_PARENT_PID"

    /// Exit status when the process that started this one (`EKEY_PARENT_PID`) is gone or
    /// cannot be watched.
    public static let parentGoneStatus: Int32 = 1

    /// When `EKEY_PARENT_PID` is set (by `ekey up`), asks Linux to kill this process when
    /// that parent dies, even by SIGKILL (`PR_SET_PDEATHSIG`), so no service outlives
    /// `ekey up`; then exits at once, with a message, if the parent already died. Does
    /// nothing when the variable is not set. Off Linux only the parent check is made.
    public static func exitWithParent(service: String, environment: [String: String], logger: Logger? = nil) {
        guard let text = environment[parentVariable] else { return }
        func stop(_ message: String) -> Never {
            logger?.critical("\(service) cannot start: \(message)")
            FileHandle.standardError.write(Data("\(service): \(message)\n".utf8))
            exit(parentGoneStatus)
        }
        // The variable was read, and the request made, at process start on the main thread
        // (CEKeyProcess); a value it did not take as a process ID was not acted on.
        let result = ekey_parent_watch_result()
        let parent = ekey_parent_watch_pid()
        guard result != EKEY_PARENT_NOT_REQUESTED, parent > 0 else {
            stop("\(parentVariable)=\(text) is not a process ID; `ekey up` sets it for its children, unset it to run \(service) alone")
        }
        let gone = "the `ekey up` that started it (pid \(parent), \(parentVariable)) has already exited, so it stops too; start the stack again with `ekey up`"
        switch result {
        case EKEY_PARENT_WATCHED, EKEY_PARENT_UNSUPPORTED:
            if getppid() != parent { stop(gone) }
        case EKEY_PARENT_GONE:
            stop(gone)
        default:
            let reason = String(cString: strerror(ekey_parent_watch_errno()))
            stop("cannot ask to be stopped with its parent \(parent): prctl(PR_SET_PDEATHSIG) failed: \(reason); unset \(parentVariable) to run \(service) alone")
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

    /// The main listener's TLS of a `tls` section, reloaded when its files change, or
    /// `nil` for `tls: none` (the service warns loudly when it starts its plaintext
    /// listener). Errors name the files by their keys under `key` (such as `gateway.tls`).
    public static func serverTLS(_ settings: TLSSettings, key: String = "tls") throws -> ServerTLS? {
        guard let files = settings.files else {
            return nil
        }
        return try ServerTLS(files: files, configKey: key)
    }
}
