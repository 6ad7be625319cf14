public import EKeyServer
public import Foundation
import Glibc
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

/// A temporary folder with the development PKI written out as PEM files.
public struct TemporaryFiles: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The folder.
    public let directory: URL

    /// Creates a fresh folder under the system temporary directory.
    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ekey-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` and returns the path.
    @discardableResult
    public func write(_ name: String, _ contents: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The path of `name` in the folder.
    public func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    /// Writes `issued` as `<name>.crt` and `<name>.key`.
    public func write(_ name: String, _ issued: DevelopmentPKI.Issued) throws {
        try write("\(name).crt", issued.certificatePEM)
        try write("\(name).key", issued.privateKeyPEM)
    }

    /// Removes the folder.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
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

/// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
public enum FreePort {
    public static func pick() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TemporaryFiles.Failure(description: "socket() failed") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else { throw TemporaryFiles.Failure(description: "could not bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
