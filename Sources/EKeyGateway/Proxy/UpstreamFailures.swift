/// No TCP connection to the upstream could be made: nothing was sent.
struct UpstreamConnectFailed: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "\(underlying)" }
}

/// The request never left the gateway: no connection (HTTP/1.1) or stream (h2c) came free,
/// or the h2c stream failed before its HEADERS were sent.
struct UpstreamNeverSent: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "the request was never sent (\(underlying))" }
}

/// Which deadline ran out on an upstream exchange.
struct UpstreamTimeout: Error, CustomStringConvertible {
    enum Stage: Sendable { case firstByte, idle }
    let stage: Stage

    var description: String {
        stage == .firstByte ? "no response head within the first_byte timeout" : "no response data within the idle timeout"
    }
}
