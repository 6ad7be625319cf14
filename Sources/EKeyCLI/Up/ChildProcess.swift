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

    func start() throws {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.consume(data)
        }
        try process.run()
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
