internal import NIOConcurrencyHelpers
internal import NIOCore

/// A fixed number of connections to one Redis node, opened lazily and reopened after a
/// failure with exponential backoff (50 ms doubling to 1 s). While every connection is
/// down and waiting out its backoff, requests fail at once with the last error instead of
/// queueing: the store fails closed, and recovers by itself once the node answers again.
final class RedisNodePool: Sendable {
    let endpoint: StoreURL.Endpoint
    private let configuration: RedisConnectionConfiguration
    private let group: any EventLoopGroup
    private let state: NIOLockedValueBox<State>

    private enum Slot {
        case idle(failures: Int, retryAt: NIODeadline, lastError: StoreError?)
        case connecting(EventLoopFuture<RedisConnection>)
        case ready(RedisConnection)
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var closed = false
    }

    private enum Choice {
        case use(RedisConnection)
        case wait(EventLoopFuture<RedisConnection>)
        case fail(StoreError)
    }

    init(endpoint: StoreURL.Endpoint, size: Int, configuration: RedisConnectionConfiguration, group: any EventLoopGroup) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.group = group
        let slots = [Slot](repeating: .idle(failures: 0, retryAt: .distantPast, lastError: nil), count: max(1, size))
        self.state = NIOLockedValueBox(State(slots: slots))
    }

    static func backoff(afterFailures failures: Int) -> TimeAmount {
        .milliseconds(min(1000, 50 << min(max(failures - 1, 0), 5)))
    }

    /// A live connection, taking the slots in turn. The slot in turn opens its connection
    /// when it has none (so the pool fills up under load); meanwhile any other ready
    /// connection serves the request.
    func connection() -> EventLoopFuture<RedisConnection> {
        let now = NIODeadline.now()
        var opening: (index: Int, failures: Int, promise: EventLoopPromise<RedisConnection>)? = nil
        let choice: Choice = self.state.withLockedValue { state in
            if state.closed {
                return .fail(StoreError.unavailable(self.configuration.urlDescription, "the client was shut down"))
            }
            let count = state.slots.count
            let start = state.next
            state.next = (start + 1) % count
            var connecting: EventLoopFuture<RedisConnection>? = nil
            var lastError: StoreError? = nil
            for offset in 0..<count {
                let index = (start + offset) % count
                if case .ready(let connection) = state.slots[index], !connection.isActive {
                    state.slots[index] = .idle(failures: 0, retryAt: now, lastError: nil)
                }
                switch state.slots[index] {
                case .ready(let connection):
                    return .use(connection)
                case .connecting(let future):
                    if connecting == nil { connecting = future }
                case .idle(let failures, let retryAt, let error):
                    if retryAt <= now, opening == nil {
                        let promise = self.group.any().makePromise(of: RedisConnection.self)
                        state.slots[index] = .connecting(promise.futureResult)
                        opening = (index, failures, promise)
                        if connecting == nil { connecting = promise.futureResult }
                    } else if lastError == nil {
                        lastError = error
                    }
                }
            }
            if let connecting { return .wait(connecting) }
            return .fail(
                lastError ?? StoreError.unavailable(self.configuration.urlDescription, "no connection to \(self.endpoint) is available"))
        }
        if let opening {
            self.open(slot: opening.index, failures: opening.failures, promise: opening.promise)
        }
        switch choice {
        case .use(let connection):
            return connection.eventLoop.makeSucceededFuture(connection)
        case .wait(let future):
            return future
        case .fail(let error):
            return self.group.any().makeFailedFuture(error)
        }
    }

    private func open(slot index: Int, failures: Int, promise: EventLoopPromise<RedisConnection>) {
        RedisConnection.connect(to: self.endpoint, configuration: self.configuration, eventLoop: promise.futureResult.eventLoop).whenComplete { result in
            switch result {
            case .success(let connection):
                let closed = self.state.withLockedValue { state in
                    if state.closed { return true }
                    state.slots[index] = .ready(connection)
                    return false
                }
                if closed {
                    connection.close().whenComplete { _ in
                        promise.fail(StoreError.unavailable(self.configuration.urlDescription, "the client was shut down"))
                    }
                    return
                }
                connection.channel.closeFuture.whenComplete { _ in
                    self.state.withLockedValue { state in
                        if case .ready(let current) = state.slots[index], current === connection {
                            state.slots[index] = .idle(failures: 0, retryAt: .now(), lastError: nil)
                        }
                    }
                }
                promise.succeed(connection)
            case .failure(let error):
                let storeError =
                    error as? StoreError ?? StoreError.unavailable(self.configuration.urlDescription, RedisConnection.describe(error))
                self.state.withLockedValue { state in
                    let failures = failures + 1
                    state.slots[index] = .idle(failures: failures, retryAt: .now() + Self.backoff(afterFailures: failures), lastError: storeError)
                }
                promise.fail(storeError)
            }
        }
    }

    /// Closes every connection; later requests fail.
    func shutdown() async {
        let connections: [RedisConnection] = self.state.withLockedValue { state in
            state.closed = true
            return state.slots.compactMap { slot in
                if case .ready(let connection) = slot { return connection }
                return nil
            }
        }
        for connection in connections {
            try? await connection.close().get()
        }
    }
}
