import CEKeyProcess
public import EKeyConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import Logging
import NIOSSL
import ServiceLifecycle
public import UnixSignals

/// How every service starts, runs and stops: JSON logs, the config file (with `EKEY_*`
/// overrides), the service built from it (``ServiceAssembly``) and run in one group, what
/// it opened closed however it ends, and a clear message plus a non-zero exit when anything
/// is wrong.
public enum ServiceStartup {
    /// Exit status for a start-up failure (bad config, unreadable TLS files).
    public static let configurationFailureStatus: Int32 = 2

    /// Runs one service as its executable: bootstraps JSON logging, loads the
    /// configuration named by `--config` or `EKEY_CONFIG` and logs its warnings, then
    /// builds and runs the service (``serve(_:config:logger:shutdownDeadline:signals:)``). An error before or while
    /// the service starts is printed to stderr (one line) and logged, and the process exits
    /// with ``configurationFailureStatus``; after a graceful shutdown it returns (exit 0).
    public static func run<Assembly: ServiceAssembly>(_ assembly: Assembly.Type, configFlag: String?) async {
        let service = Assembly.name
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
        do {
            try await serve(assembly, config: loaded.config, logger: logger)
        } catch {
            fail(service: service, logger: logger, "\(error)")
        }
    }

    /// Builds the service from `config` and runs its parts in one group (``ServiceRunner``)
    /// until a signal stops it, logging each listener's port as it listens. Tracing starts
    /// after the service's section is read and before the service is built; its exporter
    /// runs first in the group, so it stops last and flushes what the listeners finished.
    /// Whatever the service registered with its ``StartupResources`` is closed, last opened
    /// first, on every way out: a failed build, a failed run, a graceful stop. `signals`
    /// start the graceful stop (none for a service run inside a test).
    public static func serve<Assembly: ServiceAssembly>(
        _ assembly: Assembly.Type, config: StackConfig, logger: Logger, shutdownDeadline: Duration = .seconds(10),
        signals: [UnixSignal] = [.sigterm, .sigint]
    ) async throws {
        let resources = StartupResources()
        do {
            let settings = try Assembly.settings(from: config)
            let tracing = try ServiceTracing.start(config.tracing, service: Assembly.name, logger: logger)
            let service = try Assembly.assemble(settings, config: config, logger: logger, resources: resources)
            let parts = try service.services { role, port in
                logger.info("listening", metadata: ["listener": .string(role), "port": .stringConvertible(port)])
            }
            try await ServiceRunner.run((tracing.map { [$0] } ?? []) + parts, logger: logger, shutdownDeadline: shutdownDeadline, signals: signals)
        } catch {
            await resources.closeAll()
            throw error
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
