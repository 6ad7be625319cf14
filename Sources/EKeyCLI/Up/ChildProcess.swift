import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Serialises writes to stdout so lines of different children never interleave.
final class OutputLock: @unchecked Sendable {
    static let shared = OutputLock()
    private let lock = NSLock()

    func write(_ text: String) {
        lock.withLock { FileHandle.standardOutput.write(Data(text.utf8)) }
    }
}

/// The one thread that starts every child of `ekey up`, alive as long as the process.
///
/// A child asks Linux for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`, see
/// `ServiceStartup.exitWithParent`), but Linux takes the *thread* that forked it as the
/// parent: Foundation's `Process.run()` forks from the calling thread, and the threads of
/// Swift concurrency's pool end after a few idle seconds, which would stop the child while
/// `ekey up` still runs. Forking from this thread, which never ends, avoids that.
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var work: [@Sendable () -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in self.serve() }
        thread.name = "ekey-up-spawn"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                work.append { continuation.resume(with: Result(catching: body)) }
                condition.signal()
            }
        }
    }

    private func serve() -> Never {
        while true {
            let next: @Sendable () -> Void = condition.withLock {
                while work.isEmpty { condition.wait() }
                return work.removeFirst()
            }
            next()
        }
    }
}

/// One child of `ekey up`: a real executable whose stdout and stderr are streamed line by
/// line with a `[name]` prefix.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process = Process()
    private let pipe = Pipe()
    private let lock = NSLock()
    private var pending = Data()
    private var recent: [String] = []

    init(name: String, executable: String, arguments: [String], environment: [String: String], onExit: @escaping @Sendable (ChildProcess) -> Void) {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [unowned self] _ in onExit(self) }
    }

    /// Starts the process from ``SpawnThread`` (see there why).
    func start() async throws {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.consume(data)
        }
        try await SpawnThread.shared.run { [self] in try self.process.run() }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The last lines it wrote, for an error report.
    var lastLines: [String] { lock.withLock { recent } }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    private func consume(_ data: Data) {
        let lines: [String] = lock.withLock {
            if data.isEmpty {
                pipe.fileHandleForReading.readabilityHandler = nil
                let rest = pending
                pending = Data()
                return rest.isEmpty ? [] : [String(decoding: rest, as: UTF8.self)]
            }
            pending.append(data)
            var lines: [String] = []
            while let newline = pending.firstIndex(of: 0x0a) {
                lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending.removeSubrange(pending.startIndex...newline)
            }
            recent = Array((recent + lines).suffix(20))
            return lines
        }
        guard !lines.isEmpty else { return }
        OutputLock.shared.write(lines.map { "[\(name)] \($0)\n" }.joined())
    }
}
