/// A failure of the client: a server's answer (`status`, its `error` code and
/// `error_description`) or a local problem (`status` nil) with a message naming the fix.
public struct EKeyClientError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status of the server's answer, nil for a local failure.
    public let status: Int?
    /// The server's `error` code (`invalid_client`, `access_denied`, `replay_detected` ...).
    public let error: String?
    /// The server's `error_description`, or what went wrong locally.
    public let errorDescription: String
    /// `Retry-After` seconds of a 429.
    public let retryAfter: Int?

    /// A local failure.
    public init(_ description: String) {
        status = nil
        error = nil
        errorDescription = description
        retryAfter = nil
    }

    /// A server's error answer.
    public init(status: Int, error: String?, errorDescription: String, retryAfter: Int? = nil) {
        self.status = status
        self.error = error
        self.errorDescription = errorDescription
        self.retryAfter = retryAfter
    }

    public var description: String {
        guard let status else { return errorDescription }
        var text = "\(status) \(error ?? "error"): \(errorDescription)"
        if let retryAfter { text += " (retry after \(retryAfter) s)" }
        return text
    }
}
