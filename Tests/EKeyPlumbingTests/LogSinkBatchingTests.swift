@testable import EKeyServer
import Foundation
import NIOCore
import NIOPosix
import Testing

/// How a service's stdout is written: a quiet sink writes a line as its event-loop turn
/// ends; a busy one writes one batch per interval, not one `write(2)` per line; no line is
/// lost, reordered or left waiting.
struct LogSinkBatchingTests {
    /// A pipe whose write end a sink writes to; the read end is drained without blocking.
    final class Pipe {
        let readEnd: Int32
        let writeEnd: Int32
        private var received: [UInt8] = []

        init() throws {
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            readEnd = ends[0]
            writeEnd = ends[1]
            _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
        }

        deinit {
            close(readEnd)
            close(writeEnd)
        }

        /// Everything written so far.
        func text() -> String {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(readEnd, &chunk, chunk.count)
                if count <= 0 { break }
                received += chunk[..<count]
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    @Test func aQuietSinkWritesALineWhenItsTurnEnds() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let output = try Pipe()
        let sink = LogSink(fileDescriptor: output.writeEnd)
        let loop = group.next()
        try await loop.submit { sink.write("first\n") }.get()
        try await loop.submit {}.get()
        #expect(sink.batchesWritten == 1, "the line left when its turn ended")
        #expect(output.text() == "first\n")
        try await group.shutdownGracefully()
    }

    @Test func aBusySinkWritesOneBatchPerIntervalAndLosesNothing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let output = try Pipe()
        let sink = LogSink(fileDescriptor: output.writeEnd)
        let loop = group.next()
        let lineCount = 300
        let start = ContinuousClock.now
        for index in 0..<lineCount {
            try await loop.submit { sink.write("line \(index)\n") }.get()
        }
        let elapsed = ContinuousClock.now - start
        let intervals = Int(elapsed / .nanoseconds(LogSink.flushInterval.nanoseconds))
        let batches = sink.batchesWritten
        #expect(batches <= intervals + 2, "\(lineCount) lines over \(elapsed) in separate turns went out in \(batches) writes")

        let expected = (0..<lineCount).map { "line \($0)\n" }.joined()
        let deadline = ContinuousClock.now + .seconds(2)
        var text = output.text()
        while text != expected, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            text = output.text()
        }
        #expect(text == expected, "every line arrives once, in order, within the interval")
        try await group.shutdownGracefully()
    }

    @Test func aFullBatchIsWrittenAtOnce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let output = try Pipe()
        let sink = LogSink(fileDescriptor: output.writeEnd)
        let line = String(repeating: "x", count: 1023) + "\n"
        let linesPerBatch = LogSink.batchBytes / line.utf8.count
        try await group.next().submit {
            for _ in 0..<linesPerBatch { sink.write(line) }
        }.get()
        #expect(sink.batchesWritten == 1, "a turn that fills the batch writes it without waiting for the turn's end")
        #expect(output.text().utf8.count == linesPerBatch * line.utf8.count)
        try await group.shutdownGracefully()
    }
}
