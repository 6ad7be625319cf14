public import AsyncHTTPClient
public import EKeyConfig
public import EKeyStore
public import Logging
import NIOPosix
import Synchronization

/// What a service opens while it is built (HTTP clients, store connections) and must close
/// however it ends. ``ServiceStartup/serve(_:config:logger:shutdownDeadline:signals:)`` hands one to
/// ``ServiceAssembly/assemble(_:config:logger:resources:)`` and closes what it holds, last
/// opened first, after the service stopped and before a start-up failure is reported, so a
/// client is never deinitialised open (AsyncHTTPClient stops the process when one is).
///
/// ```swift
/// let stores = try resources.openStores(config.store, logger: logger)
/// let client = resources.own(try InternalHTTPClient.make(caFile: ca, certificateFile: nil, keyFile: nil))
/// ```
public final class StartupResources: Sendable {
    private let closers = Mutex<[@Sendable () async -> Void]>([])

    /// Creates an empty set; ``ServiceStartup`` makes one per service it runs.
    public init() {}

    /// Registers `close` to run when the service ends and returns `resource`.
    @discardableResult
    public func own<Resource: Sendable>(_ resource: Resource, closing close: @escaping @Sendable (Resource) async -> Void) -> Resource {
        closers.withLock { $0.append { await close(resource) } }
        return resource
    }

    /// Registers an HTTP client, shut down when the service ends.
    @discardableResult
    public func own(_ client: HTTPClient) -> HTTPClient {
        own(client) { try? await $0.shutdown() }
    }

    /// Registers the stores, whose connections close when the service ends.
    @discardableResult
    public func own(_ stores: Stores) -> Stores {
        own(stores) { await $0.shutdown() }
    }

    /// Opens the stores that `store` names (`store.url`, keys under `store.prefix`) on
    /// NIO's shared event loops and registers them, so their connections close when the
    /// service ends.
    public func openStores(_ store: StoreConfig, logger: Logger) throws(StoreError) -> Stores {
        own(try Stores.make(url: store.url, prefix: store.prefix, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger))
    }

    /// Closes everything registered, last opened first; a second call does nothing.
    public func closeAll() async {
        let closers = self.closers.withLock { closers in
            defer { closers = [] }
            return closers
        }
        for close in closers.reversed() {
            await close()
        }
    }
}
