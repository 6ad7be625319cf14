import AsyncAlgorithms
import Hummingbird
import NIOCore
import NIOConcurrencyHelpers

/// Carries a request body from the client to the upstream with back-pressure, and lets
/// the gateway take the body back before Hummingbird reads the rest of it.
///
/// The upstream may answer before it has read the whole request body (nginx's `return`
/// does). Hummingbird reads whatever is left of the body once the response is written; if
/// the upstream client were still reading the same stream, the two readers would collide.
/// So one task pumps the body into a channel of one chunk at a time (the client is only
/// read as fast as the upstream takes data), and ``stop()`` turns the pump into a drain
/// that discards the rest of the client's body, waiting until it has ended, so Hummingbird
/// finds the body finished. A client that neither finishes its body nor closes within
/// ``drainDeadline`` has its read cancelled instead.
final class RequestBodyRelay: Sendable {
    /// How long ``stop()`` waits for the client to finish sending its body.
    static let drainDeadline: Duration = .seconds(5)

    private let channel = AsyncThrowingChannel<ByteBuffer, any Error>()
    private let forwarding = NIOLockedValueBox(true)
    private let pump: Task<Void, Never>

    /// Starts pumping `body`.
    convenience init(_ body: RequestBody) {
        self.init(first: nil, rest: body.makeAsyncIterator())
    }

    /// Starts pumping a body whose `first` chunk was already read (to tell an empty body
    /// from one that has content), then the rest of it.
    init(first: ByteBuffer?, rest: RequestBody.AsyncIterator) {
        let channel = self.channel
        let forwarding = self.forwarding
        let handOver = IteratorHandOver(iterator: rest)
        pump = Task {
            var iterator = handOver.iterator
            do {
                if let first, forwarding.withLockedValue({ $0 }) {
                    await channel.send(first)
                }
                while let chunk = try await iterator.next() {
                    if forwarding.withLockedValue({ $0 }) {
                        await channel.send(chunk)
                    }
                }
                channel.finish()
            } catch {
                channel.fail(error)
            }
        }
    }

    /// The chunks, for the upstream request.
    var chunks: AsyncThrowingChannel<ByteBuffer, any Error> { channel }

    /// Stops forwarding, drains what is left of the client's body, and returns once the
    /// pump has let go of it (or after ``drainDeadline``, cancelling the read).
    func stop() async {
        forwarding.withLockedValue { $0 = false }
        channel.finish()
        let pump = self.pump
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await pump.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: Self.drainDeadline)
                return false
            }
            if await group.next() == false {
                pump.cancel()
            }
            group.cancelAll()
        }
    }
}

/// Moves a body iterator into the relay's task. It is used there only: the caller hands it
/// over and never touches its own copy again.
private struct IteratorHandOver: @unchecked Sendable {
    let iterator: RequestBody.AsyncIterator
}
