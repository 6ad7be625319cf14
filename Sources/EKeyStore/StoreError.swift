/// A store operation failed. Callers fail closed: nothing is allowed on a `StoreError`.
///
/// Compare errors by `code`; `message` says what happened and what to do, and names the
/// store URL with its password masked.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: String { case invalidURL, invalidArgument, unavailable, authenticationFailed, timeout, capacityExceeded, serverError, protocolViolation, clockDisagreement }
        fileprivate let value: Value

        /// The store URL (or one of its options) cannot be used.
        public static let invalidURL = Code(value: .invalidURL)
        /// A caller passed a value the store cannot take (an empty trace, a limit below 1).
        public static let invalidArgument = Code(value: .invalidArgument)
        /// The store cannot be reached (connection refused, closed, TLS failure, cluster down).
        public static let unavailable = Code(value: .unavailable)
        /// The server refused the credentials in the URL.
        public static let authenticationFailed = Code(value: .authenticationFailed)
        /// The server did not answer within the connect or command timeout.
        public static let timeout = Code(value: .timeout)
        /// The in-memory store is full of live entries and refuses new ones.
        public static let capacityExceeded = Code(value: .capacityExceeded)
        /// The server answered a command with an error.
        public static let serverError = Code(value: .serverError)
        /// The server's reply did not have the expected shape.
        public static let protocolViolation = Code(value: .protocolViolation)
        /// The store's clock is so far ahead of the caller's that a counter would expire
        /// while its token is still accepted; nothing was counted.
        public static let clockDisagreement = Code(value: .clockDisagreement)

        public var description: String { self.value.rawValue }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "store \(self.code): \(self.message)" }

    static func unavailable(_ url: String, _ reason: String) -> StoreError {
        StoreError(.unavailable, "store \(url) is unavailable: \(reason); check that the server runs and is reachable, requests fail closed until it is")
    }

    static func timeout(_ url: String, _ what: String) -> StoreError {
        StoreError(.timeout, "store \(url) did not answer \(what) in time; check the server's load and the network, or raise the timeout in the URL")
    }

    static func counterExpiryPassed(_ url: String) -> StoreError {
        StoreError(
            .clockDisagreement,
            "store \(url): the usage counter's expiry (token exp + clock skew + margin) has already passed on the store's clock, so the use cannot be counted; synchronise the clocks of the gateways and the store (NTP)")
    }

    static func protocolViolation(_ url: String, _ what: String) -> StoreError {
        StoreError(.protocolViolation, "store \(url) sent an unexpected reply: \(what); check that the URL points at a Redis server (>= 5)")
    }
}
