import Synchronization

/// A clock the test moves by hand, for code that takes a clock instead of reading
/// `ContinuousClock` (`JWKSCache`, `MemoryStore`'s `now`).
///
/// Its instants are `ContinuousClock` instants that stand still until ``advance(by:)``, so
/// one clock can drive both a `Clock` parameter and a `() -> ContinuousClock.Instant` one.
/// A `sleep` returns once the clock has been advanced to its deadline; ``sleepers(atLeast:)``
/// waits until the code under test has gone to sleep, so a test can advance the clock
/// knowing the sleep it means to end is already waiting.
public final class TestClock: Clock {
    public typealias Instant = ContinuousClock.Instant

    private struct Sleeper {
        let id: UInt64
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var offset: Duration = .zero
        var sleepers: [Sleeper] = []
        /// Sleeps cancelled before their continuation was stored.
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
        /// Tests waiting for at least `count` sleepers; resumed with `true` when there are,
        /// with `false` when they gave up.
        var waiters: [(id: UInt64, count: Int, continuation: CheckedContinuation<Bool, Never>)] = []

        /// The waiters whose count is now reached, removed from the list.
        mutating func satisfiedWaiters() -> [CheckedContinuation<Bool, Never>] {
            let count = sleepers.count
            let ready = waiters.filter { $0.count <= count }.map(\.continuation)
            waiters.removeAll { $0.count <= count }
            return ready
        }
    }

    private let start = ContinuousClock.now
    private let state = Mutex(State())

    public init() {}

    public var now: Instant { start + state.withLock { $0.offset } }

    public var minimumResolution: Duration { .zero }

    /// Moves the clock forward and wakes every sleep whose deadline it reached.
    public func advance(by duration: Duration) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.offset += duration
            let now = start + state.offset
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// How many sleeps are waiting for the clock to move.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once at least `count` sleeps are waiting for the clock to move; throws if
    /// that has not happened within `timeout` of real time (the code under test stopped, or
    /// never slept on this clock).
    public func sleepers(atLeast count: Int = 1, within timeout: Duration = .seconds(30)) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        let giveUp = Task {
            try await Task.sleep(for: timeout)
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
        defer { giveUp.cancel() }
        let reached = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.waiters.append((id, count, continuation))
                return false
            }
            if ready { continuation.resume(returning: true) }
        }
        guard reached else {
            throw Timeout(description: "fewer than \(count) sleeps on the test clock after \(timeout)")
        }
    }

    /// ``sleepers(atLeast:within:)`` gave up.
    public struct Timeout: Error, CustomStringConvertible {
        public let description: String
    }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Start { case due, cancelled, waiting([CheckedContinuation<Bool, Never>]) }
                let outcome = state.withLock { state -> Start in
                    if state.cancelled.remove(id) != nil { return .cancelled }
                    if deadline <= start + state.offset { return .due }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return .waiting(state.satisfiedWaiters())
                }
                switch outcome {
                case .due: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting(let waiters): for waiter in waiters { waiter.resume(returning: true) }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }
}
