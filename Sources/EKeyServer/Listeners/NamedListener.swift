import Glibc
import NIOCore
public import ServiceLifecycle

/// A listener of a service's group that names its config key when it fails, so that a
/// port already in use stops the service with `gateway.listen: cannot listen on
/// 0.0.0.0:9443: the address is already in use; ...` instead of a bare socket error.
public struct NamedListener: Service, CustomStringConvertible {
    let listener: any Service
    let key: String
    let address: String

    /// Wraps `listener`, configured by `key` (such as `gateway.listen`) to listen on `host`:`port`.
    public init(_ listener: any Service, key: String, host: String, port: Int) {
        self.listener = listener
        self.key = key
        self.address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public var description: String { "\(key) \(address)" }

    public func run() async throws {
        do {
            try await listener.run()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ListenerError(key: key, address: address, underlying: error)
        }
    }
}

/// Why a listener could not listen (or stopped); the message names the config key, its
/// `EKEY_*` variable and the fix.
public struct ListenerError: Error, CustomStringConvertible {
    public let description: String

    init(key: String, address: String, underlying: any Error) {
        let variable = "EKEY_" + String(key.uppercased().map { $0 == "." ? "_" : $0 })
        let head = "\(key): cannot listen on \(address)"
        switch (underlying as? IOError)?.errnoCode {
        case EADDRINUSE:
            description = "\(head): the address is already in use; stop the process that holds the port, or set another port in \(key) (or \(variable))"
        case EACCES:
            description = "\(head): permission denied; ports below 1024 need CAP_NET_BIND_SERVICE, so set a port from 1024 up in \(key) (or \(variable))"
        case EADDRNOTAVAIL:
            description = "\(head): the host is not an address of this machine; set 0.0.0.0, 127.0.0.1 or one of its addresses in \(key) (or \(variable))"
        default:
            description = "\(head) (\(underlying)); check the host and port in \(key) (or \(variable))"
        }
    }
}
