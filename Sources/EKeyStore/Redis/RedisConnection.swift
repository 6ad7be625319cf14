internal import NIOCore
internal import NIOPosix
internal import NIOSSL

/// A command on its way to the server with the promise its reply completes.
struct RedisRequest: Sendable {
    var command: RedisCommand
    var promise: EventLoopPromise<RedisValue>
}

/// What a connection needs to reach and enter one Redis node.
struct RedisConnectionConfiguration: Sendable {
    var tls: NIOSSLContext?
    var tlsServerName: String?
    var username: String?
    var password: String?
    var database: Int
    var connectTimeout: TimeAmount
    var commandTimeout: TimeAmount
    /// The store URL with the password masked, for error messages.
    var urlDescription: String
}

/// Pipelines requests on one channel: replies arrive in request order, so each completes
/// the oldest waiting promise (FIFO). A reply later than the command timeout closes the
/// connection, since every later reply would be out of step; all waiting requests then
/// fail and the pool connects afresh.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RedisValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Waiting {
        var promise: EventLoopPromise<RedisValue>
        var deadline: NIODeadline
    }

    private var waiting = CircularBuffer<Waiting>(initialCapacity: 64)
    private var closedError: StoreError?
    private var timer: Scheduled<Void>?
    private var flushScheduled = false
    private let commandTimeout: TimeAmount
    private let urlDescription: String

    init(commandTimeout: TimeAmount, urlDescription: String) {
        self.commandTimeout = commandTimeout
        self.urlDescription = urlDescription
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        if let closedError = self.closedError {
            request.promise.fail(closedError)
            promise?.fail(closedError)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 128)
        do {
            try RESPCommandEncoder.encode(request.command, into: &buffer)
        } catch {
            request.promise.fail(StoreError.protocolViolation(self.urlDescription, "command \(request.command) could not be encoded"))
            promise?.fail(error)
            return
        }
        self.waiting.append(Waiting(promise: request.promise, deadline: .now() + self.commandTimeout))
        if self.timer == nil { self.armTimer(context: context) }
        context.write(self.wrapOutboundOut(buffer), promise: promise)
        self.scheduleFlush(context: context)
    }

    /// Writes issued in the same event-loop tick (concurrent callers) share one flush.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = self.unwrapInboundIn(data)
        guard let oldest = self.waiting.popFirst() else {
            self.failAll(StoreError.protocolViolation(self.urlDescription, "a reply arrived that no command asked for"))
            context.close(promise: nil)
            return
        }
        oldest.promise.succeed(value)
    }

    /// Times the oldest waiting command. The timer is left to fire, not cancelled when the
    /// queue empties (SwiftNIO cancels by a linear search of its loop's timers, and this
    /// would be once per reply): firing with nothing waiting it stops, and firing before
    /// the oldest command's deadline it waits for that one.
    private func armTimer(context: ChannelHandlerContext) {
        guard let oldest = self.waiting.first else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) {
            self.timer = nil
            guard let oldest = self.waiting.first else { return }
            if oldest.deadline <= .now() {
                self.failAll(StoreError.timeout(self.urlDescription, "a command within \(self.commandTimeout.nanoseconds / 1_000_000) ms"))
                context.close(promise: nil)
            } else {
                self.armTimer(context: context)
            }
        }
    }

    private func failAll(_ error: StoreError) {
        if self.closedError == nil { self.closedError = error }
        self.timer?.cancel()
        self.timer = nil
        while let waiting = self.waiting.popFirst() {
            waiting.promise.fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(StoreError.unavailable(self.urlDescription, "the connection was closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failAll(StoreError.unavailable(self.urlDescription, "the connection failed (\(error))"))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension RedisCommandHandler: Sendable {}

/// One connection to one Redis node, authenticated and on its database.
final class RedisConnection: Sendable {
    let channel: any Channel
    let urlDescription: String

    private init(channel: any Channel, urlDescription: String) {
        self.channel = channel
        self.urlDescription = urlDescription
    }

    var isActive: Bool { self.channel.isActive }
    var eventLoop: any EventLoop { self.channel.eventLoop }

    /// Sends `command`; the future holds the reply, error replies included.
    func send(_ command: RedisCommand) -> EventLoopFuture<RedisValue> {
        let promise = self.channel.eventLoop.makePromise(of: RedisValue.self)
        self.write(RedisRequest(command: command, promise: promise))
        return promise.futureResult
    }

    /// Writes `request`; a write the channel refuses (it closed meanwhile, so the command
    /// handler never sees it) fails the request's promise too, so no caller waits forever.
    private func write(_ request: RedisRequest) {
        let written = self.channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            request.promise.fail(StoreError.unavailable(self.urlDescription, "the connection was closed (\(error))"))
        }
        self.channel.write(request, promise: written)
    }

    /// Sends `commands` back to back, with nothing from other callers in between
    /// (`ASKING` must directly precede the command it is for).
    func send(batch commands: [RedisCommand]) -> [EventLoopFuture<RedisValue>] {
        let eventLoop = self.channel.eventLoop
        let requests = commands.map { RedisRequest(command: $0, promise: eventLoop.makePromise(of: RedisValue.self)) }
        eventLoop.execute {
            for request in requests {
                self.write(request)
            }
        }
        return requests.map(\.promise.futureResult)
    }

    func close() -> EventLoopFuture<Void> {
        self.channel.close().recover { _ in }
    }

    /// Connects to `endpoint`, then authenticates and selects the database.
    static func connect(
        to endpoint: StoreURL.Endpoint, configuration: RedisConnectionConfiguration, eventLoop: any EventLoop
    ) -> EventLoopFuture<RedisConnection> {
        let url = configuration.urlDescription
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls = configuration.tls {
                        let serverName = configuration.tlsServerName ?? (Self.isIPAddress(endpoint.host) ? nil : endpoint.host)
                        try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try pipeline.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try pipeline.addHandler(RedisCommandHandler(commandTimeout: configuration.commandTimeout, urlDescription: url))
                }
            }
        return bootstrap.connect(host: endpoint.host, port: endpoint.port)
            .flatMapErrorThrowing { error in
                if let error = error as? ChannelError, case .connectTimeout = error {
                    throw StoreError.timeout(url, "the connection to \(endpoint) within \(configuration.connectTimeout.nanoseconds / 1_000_000) ms")
                }
                throw StoreError.unavailable(url, "cannot connect to \(endpoint) (\(Self.describe(error)))")
            }
            .flatMap { channel in
                let connection = RedisConnection(channel: channel, urlDescription: url)
                return connection.handshake(configuration: configuration, endpoint: endpoint)
                    .map { connection }
                    .flatMapError { error in
                        connection.close().flatMapThrowing { throw error }
                    }
            }
    }

    private func handshake(configuration: RedisConnectionConfiguration, endpoint: StoreURL.Endpoint) -> EventLoopFuture<Void> {
        let url = configuration.urlDescription
        var done = self.eventLoop.makeSucceededVoidFuture()
        if let password = configuration.password {
            let auth = configuration.username.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password)
            done = self.send(auth).flatMapThrowing { reply in
                if let message = reply.errorMessage {
                    throw StoreError(
                        .authenticationFailed,
                        "store \(url) refused the credentials (\(message)); check the user and password in store.url")
                }
            }
        }
        if configuration.database != 0 {
            done = done.flatMap {
                self.send(RedisCommand("SELECT", String(configuration.database))).flatMapThrowing { reply in
                    if let message = reply.errorMessage {
                        throw StoreError(
                            .invalidURL,
                            "store \(url) cannot select database \(configuration.database) (\(message)); use a database number the server has")
                    }
                }
            }
        }
        return done.flatMapErrorThrowing { error in
            guard error is StoreError else { throw StoreError.unavailable(url, "the handshake with \(endpoint) failed (\(error))") }
            throw error
        }
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return "\(first.error)"
        }
        return "\(error)"
    }
}
