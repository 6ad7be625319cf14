// ekey-store-bench: consume calls per second through the Swift Redis client.
//
// Usage: ekey-store-bench --url redis://127.0.0.1:6379 [--concurrency 50] [--seconds 10]
//                         [--prefix ekey:] [--json]
// Each call is one `consume` (EVALSHA of consume.lua with a trace key and a jti key) on a
// distinct trace, as the gateway makes it. Prints a human line, or one JSON object.

import EKeyStore
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

struct Options {
    var url = "redis://127.0.0.1:6379"
    var concurrency = 50
    var seconds = 10.0
    var prefix = "ekey:"
    var json = false

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--url": self.url = iterator.next() ?? self.url
            case "--concurrency": self.concurrency = iterator.next().flatMap(Int.init) ?? self.concurrency
            case "--seconds": self.seconds = iterator.next().flatMap(Double.init) ?? self.seconds
            case "--prefix": self.prefix = iterator.next() ?? self.prefix
            case "--json": self.json = true
            default:
                FileHandle.standardError.write(
                    Data("usage: ekey-store-bench --url redis://host:port [--concurrency 50] [--seconds 10] [--prefix ekey:] [--json]\n".utf8))
                exit(2)
            }
        }
    }
}

/// One event loop, also serving as Swift concurrency's executor: the client's I/O and the
/// callers' tasks share one thread, as when pinned to one core.
NIOSingletons.groupLoopCountSuggestion = 1
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

let options = Options(arguments: CommandLine.arguments)
let stores: Stores
do {
    stores = try Stores.make(
        url: options.url, prefix: options.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "ekey-store-bench"))
    try await stores.usage.ping()
} catch {
    FileHandle.standardError.write(Data("ekey-store-bench: \(error)\n".utf8))
    exit(1)
}

let completed = Atomic<Int>(0)
let failed = Atomic<Int>(0)
let stop = Atomic<Bool>(false)
let run = UInt64.random(in: 0..<UInt64.max)
let started = ContinuousClock.now

await withTaskGroup(of: Void.self) { group in
    for worker in 0..<options.concurrency {
        group.addTask {
            var sequence = 0
            while !stop.load(ordering: .relaxed) {
                sequence += 1
                let request = ConsumeRequest(
                    trace: "\(String(run, radix: 16))-\(worker)-\(sequence)", jti: "j", limit: 5, subject: "bench",
                    counterExpiresAtMilliseconds: WallClock.epochMilliseconds() + 10_000, proofWindow: .seconds(10), expiresAt: 0)
                do {
                    _ = try await stores.usage.consume(request)
                    completed.add(1, ordering: .relaxed)
                } catch {
                    failed.add(1, ordering: .relaxed)
                }
            }
        }
    }
    try? await Task.sleep(for: .seconds(options.seconds))
    stop.store(true, ordering: .relaxed)
}

let elapsed = ContinuousClock.now - started
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let calls = completed.load(ordering: .relaxed)
let errors = failed.load(ordering: .relaxed)
let rate = Double(calls) / seconds
if options.json {
    print(
        #"{"calls": \#(calls), "errors": \#(errors), "seconds": \#(String(format: "%.3f", seconds)), "concurrency": \#(options.concurrency), "calls_per_second": \#(String(format: "%.1f", rate))}"#
    )
} else {
    print(
        "ekey-store-bench: \(calls) consume calls in \(String(format: "%.2f", seconds)) s at concurrency \(options.concurrency): \(String(format: "%.0f", rate)) calls/s, \(errors) errors"
    )
}
await stores.shutdown()
exit(errors == 0 ? 0 : 1)
