import NIOConcurrencyHelpers
import NIOCore

/// The body of one request: filled by ``InlineRequestHandler`` on the channel's event loop,
/// read once by the responder.
///
/// Back-pressure: above ``pauseAbove`` buffered bytes the handler stops asking the channel
/// for more (an HTTP/2 stream then stops granting flow-control window, an HTTP/1.1
/// connection stops reading its socket); once the reader has taken the buffer below half
/// of that, `onDemand` asks the handler to read again.
final class InboundBodyStream: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    /// Buffered bytes above which reading pauses.
    static let pauseAbove = 256 * 1024

    private struct State {
        var buffers = CircularBuffer<ByteBuffer>()
        var bufferedBytes = 0
        /// Set once: `.success` at the end of the body, `.failure` when the request broke.
        var ending: Result<Void, any Error>?
        var waiter: CheckedContinuation<ByteBuffer?, any Error>?
        var paused = false
    }

    private let state = NIOLockedValueBox(State())
    private let onDemand: @Sendable () -> Void

    /// `onDemand` runs, on any thread, when a paused body has been read down.
    init(onDemand: @escaping @Sendable () -> Void) {
        self.onDemand = onDemand
    }

    /// Whether the handler should stop reading until `onDemand` runs.
    var isPaused: Bool { state.withLockedValue { $0.paused } }

    /// Hands `buffer` to the reader; dropped once the body has ended or failed.
    func append(_ buffer: ByteBuffer) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = state.withLockedValue { state in
            guard state.ending == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.buffers.append(buffer)
            state.bufferedBytes += buffer.readableBytes
            if state.bufferedBytes > Self.pauseAbove { state.paused = true }
            return nil
        }
        waiter?.resume(returning: buffer)
    }

    /// Ends the body: normally with `nil`, or with the error the reader will get after
    /// the bytes already buffered. Later calls change nothing.
    func finish(_ error: (any Error)? = nil) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = state.withLockedValue { state in
            guard state.ending == nil else { return nil }
            state.ending = error.map { .failure($0) } ?? .success(())
            defer { state.waiter = nil }
            return state.waiter
        }
        if let error {
            waiter?.resume(throwing: error)
        } else {
            waiter?.resume(returning: nil)
        }
    }

    private enum Step {
        case deliver(ByteBuffer?, resumeReading: Bool)
        case fail(any Error)
        case wait
    }

    private func take(_ state: inout State) -> Step {
        if let buffer = state.buffers.popFirst() {
            state.bufferedBytes -= buffer.readableBytes
            let resume = state.paused && state.bufferedBytes < Self.pauseAbove / 2
            if resume { state.paused = false }
            return .deliver(buffer, resumeReading: resume)
        }
        switch state.ending {
        case .success: return .deliver(nil, resumeReading: false)
        case .failure(let error): return .fail(error)
        case nil: return .wait
        }
    }

    fileprivate func next() async throws -> ByteBuffer? {
        switch state.withLockedValue({ take(&$0) }) {
        case .deliver(let buffer, let resume):
            if resume { onDemand() }
            return buffer
        case .fail(let error):
            throw error
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let step: Step = state.withLockedValue { state in
                    let step = take(&state)
                    if case .wait = step { state.waiter = continuation }
                    return step
                }
                switch step {
                case .deliver(let buffer, let resume):
                    if resume { onDemand() }
                    continuation.resume(returning: buffer)
                case .fail(let error):
                    continuation.resume(throwing: error)
                case .wait:
                    break
                }
            }
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let stream: InboundBodyStream

        mutating func next() async throws -> ByteBuffer? {
            try await stream.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }
}
