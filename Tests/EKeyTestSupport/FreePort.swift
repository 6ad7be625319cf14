import Foundation
import Glibc
import Synchronization

/// A loopback TCP port that was free a moment ago, for a service a test starts.
///
/// Ports come from below the kernel's ephemeral range: a port that bind(0) hands out can be
/// taken, between the pick and the service's own bind, as the source port of another test's
/// outgoing connection (seen in CI as "address already in use"). No port is handed out twice
/// in one test process.
public enum FreePort {
    /// A free port on 127.0.0.1; with `limit`, one below it (Redis Cluster also listens on
    /// port + 10000, so its nodes take ports below 55000).
    public static func pick(below limit: Int = 65536) throws -> Int {
        let upper = min(limit, ephemeralStart)
        let lower = max(1024, upper - 12000)
        for _ in 0..<10_000 {
            let port = Int.random(in: lower..<upper)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if let (socket, _) = try? LoopbackSocket.bind(port: port, listening: false) {
                close(socket)
                return port
            }
        }
        throw TemporaryFiles.Failure(description: "no free loopback port between \(lower) and \(upper); stop what holds them")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    /// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
    private static let ephemeralStart: Int = {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return range.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32768
    }()
}

/// A loopback port held by a listening socket, so that a service cannot bind it.
public final class HeldPort {
    public let port: Int
    private var socket: Int32

    public init() throws {
        (socket, port) = try LoopbackSocket.bind(listening: true)
    }

    /// Releases the port.
    public func close() {
        if socket >= 0 {
            Glibc.close(socket)
            socket = -1
        }
    }

    deinit { close() }
}

private enum LoopbackSocket {
    /// A TCP socket bound to `port` on 127.0.0.1 (0: a kernel-chosen one), and listening if
    /// asked, with its port.
    static func bind(port: Int = 0, listening: Bool) throws -> (socket: Int32, port: Int) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TemporaryFiles.Failure(description: "socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                Glibc.bind(socket, pointer, length) == 0 && (!listening || listen(socket, 8) == 0) && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            throw TemporaryFiles.Failure(description: "could not \(listening ? "hold" : "bind") a loopback port: \(reason)")
        }
        return (socket, Int(UInt16(bigEndian: address.sin_port)))
    }
}
