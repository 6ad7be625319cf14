import AsyncAlgorithms
public import Hummingbird
import NIOCore

/// Carries a request body from the client to the upstream with back-pressure, and lets
/// the gateway take the body back before Hummingbird reads the rest of it.
///
/// The upstream may answer before it has read the whole request body (nginx's `return`
/// does). Hummingbird then drains the body once the response is written; if the
/// upstream client were still reading the same stream, the two readers would collide.
/// So one task pumps the body into a channel of one chunk at a time (the client is only
/// read as fast as the upstream takes data), and ``stop()`` cancels that task and waits
/// for it, which the gateway does before its response completes.
final class RequestBodyRelay: Sendable {
    private let channel = AsyncThrowingChannel<ByteBuffer, any Error>()
    private let pump: Task<Void, Never>

    /// Starts pumping `body`.
    init(_ body: RequestBody) {
        let channel = self.channel
        pump = Task {
            do {
                for try await chunk in body {
                    await channel.send(chunk)
                    if Task.isCancelled { break }
                }
                channel.finish()
            } catch {
                channel.fail(error)
            }
        }
    }

    /// The chunks, for the upstream request.
    var chunks: AsyncThrowingChannel<ByteBuffer, any Error> { channel }

    /// Stops reading the client's body and waits until the pump has let go of it.
    func stop() async {
        pump.cancel()
        channel.finish()
        await pump.value
    }
}
