import Foundation
public import Hummingbird
import Logging
public import ServiceLifecycle

/// Runs a Hummingbird application on a free loopback port for the length of `body`.
public enum LiveServer {
    /// Builds the app with a callback that reports the bound port, runs it, calls `body`
    /// with the port, then shuts the app down.
    public static func with<App: ApplicationProtocol, Result: Sendable>(
        _ makeApp: (@escaping @Sendable (Int) async -> Void) throws -> App,
        _ body: (Int) async throws -> Result
    ) async throws -> Result {
        try await LiveServices.with(roles: ["server"], { report in
            [try makeApp { port in await report("server", port) }]
        }) { ports in
            try await body(ports["server"]!)
        }
    }
}

/// Runs a service's parts in one `ServiceGroup` for the length of `body`, handing `body`
/// the ports its listeners reported, by role (for example `jwks` and `admin`).
public enum LiveServices {
    public static func with<Result: Sendable>(
        roles: Set<String>,
        _ makeServices: (@escaping @Sendable (String, Int) async -> Void) throws -> [any Service],
        _ body: ([String: Int]) async throws -> Result
    ) async throws -> Result {
        let (reports, continuation) = AsyncStream.makeStream(of: (String, Int).self)
        let services = try makeServices { role, port in continuation.yield((role, port)) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(configuration: .init(services: services, logger: Logger(label: "test")))
            group.addTask { try await serviceGroup.run() }
            var ports: [String: Int] = [:]
            var iterator = reports.makeAsyncIterator()
            while !roles.isSubset(of: Set(ports.keys)), let (role, port) = await iterator.next() {
                ports[role] = port
            }
            do {
                let result = try await body(ports)
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}
