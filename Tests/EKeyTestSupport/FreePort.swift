import Glibc

/// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
public enum FreePort {
    /// A free port on 127.0.0.1; with `limit`, one below it (Redis Cluster also listens on
    /// port + 10000, so its nodes take ports below 55000).
    public static func pick(below limit: Int = 65536) throws -> Int {
        while true {
            let (socket, port) = try LoopbackSocket.bind(listening: false)
            close(socket)
            if port < limit { return port }
        }
    }
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
    /// A TCP socket bound to a kernel-chosen port on 127.0.0.1 (and listening, if asked),
    /// with that port.
    static func bind(listening: Bool) throws -> (socket: Int32, port: Int) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TemporaryFiles.Failure(description: "socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
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
