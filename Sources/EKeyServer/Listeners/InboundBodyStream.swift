import NIOConcurrencyHelpers
package import NIOCore

/// A body arriving on a channel: filled by its handler on the channel's event loop, read
/// once by an async reader. Request bodies on the gateway's listener (``InlineRequestHandler``)
/// and response bodies from `http://` upstreams use it.
///
/// Back-pressure: above ``pauseAbove`` buffered bytes the handler stops asking the channel
/// for more (an HTTP/2 stream then stops granting flow-control window, an HTTP/1.1
/// connection stops reading its socket); once the reader has taken the buffer below half
/// of that, `onDemand` asks the handler to read again.
package final class InboundBodyStream: AsyncSequence, Sendable {
    package typealias Element = ByteBuffer

    /// Buffered bytes above which reading pauses.
    package static let pauseAbove = 256 * 1024

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
    package init(onDemand: @escaping @Sendable () -> Void) {
        self.onDemand = onDemand
    }

    /// Whether the handler should stop reading until `onDemand` runs.
    package var isPaused: Bool { state.withLockedValue { $0.paused } }

    /// Bytes received and not yet read.
    package var bufferedByteCount: Int { state.withLockedValue { $0.bufferedBytes } }

    /// Whether the body ended normally (the reader may not have read all of it yet).
    package var hasEnded: Bool {
        state.withLockedValue { state in
            if case .success = state.ending { return true }
            return false
        }
    }

    /// The whole body, without taking it from the reader, when it has already ended
    /// normally, none of it was read yet, and it is at most `limit` bytes; else `nil`.
    package func completeBody(upTo limit: Int) -> ByteBuffer? {
        state.withLockedValue { state in
            guard case .success = state.ending, state.bufferedBytes <= limit, !state.paused else { return nil }
            guard state.buffers.count > 1 else { return state.buffers.first ?? ByteBuffer() }
            var whole = ByteBuffer()
            whole.reserveCapacity(state.bufferedBytes)
            for buffer in state.buffers { whole.writeImmutableBuffer(buffer) }
            return whole
        }
    }

    /// Hands `buffer` to the reader; dropped once the body has ended or failed.
    package func append(_ buffer: ByteBuffer) {
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
    package func finish(_ error: (any Error)? = nil) {
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

    package struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let stream: InboundBodyStream

        package mutating func next() async throws -> ByteBuffer? {
            try await stream.next()
        }
    }

    package func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }
}
