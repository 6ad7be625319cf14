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

/// A retry failed after an earlier attempt of the same request had been written to an
/// upstream connection: the upstream may have processed it, so the use stays counted.
struct UpstreamRequestWritten: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "the request was written on an earlier attempt, then: \(underlying)" }
}

/// A streamed request body ran past (or ended short of) the length its client declared;
/// the upstream connection is closed rather than let the bytes frame another request.
struct BodyLengthMismatch: Error, CustomStringConvertible {
    var description: String { "the request body did not match its declared Content-Length" }
}
