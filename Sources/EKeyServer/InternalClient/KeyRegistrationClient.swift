public import AsyncHTTPClient
public import EKeyProtocol
public import Logging
import NIOCore
import NIOHTTP1

/// Registers an issuer's public signing keys with the publisher (docs/spec/issuer.md, docs/spec/publisher.md):
/// `POST /internal/v1/keys` over internal HTTP/2 mTLS, retried with exponential backoff
/// while the publisher is unreachable or answers 5xx. A 4xx answer is final: retrying
/// cannot fix a refused key or a missing authorisation. A 410 (the kid was revoked) is a
/// failure of its own kind, ``Failure/Kind/keyRevoked``: the caller must stop signing with
/// that key.
public struct KeyRegistrationClient: Sendable {
    /// What the publisher did with the key.
    public enum Outcome: Sendable, Equatable {
        /// 201: the key is new.
        case created
        /// 200: the same key was already registered.
        case alreadyRegistered
    }

    /// Why a registration failed.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// The kinds of failure a caller acts on differently.
        public enum Kind: Sendable, Equatable {
            /// No answer came (connection, TLS, timeout): retryable.
            case unreachable
            /// The publisher answered 5xx: retryable.
            case serverError
            /// 410 `key_revoked`: an administrator revoked this kid. Final; never register
            /// or sign with the key again.
            case keyRevoked
            /// Any other 4xx: final, the message says what to fix.
            case refused
        }

        /// What kind of failure this is.
        public let kind: Kind
        /// The HTTP status, `nil` when no answer came.
        public let status: Int?
        public let description: String

        /// Whether another attempt may succeed.
        public var isRetryable: Bool { kind == .unreachable || kind == .serverError }
    }

    /// Backoff between attempts.
    public struct Backoff: Sendable {
        public var initialDelay: Duration = .milliseconds(200)
        public var maximumDelay: Duration = .seconds(5)
        /// Attempts before giving up; `nil` retries until the task is cancelled.
        public var maximumAttempts: Int? = nil

        /// The defaults above.
        public init() {}
    }

    private let baseURL: String
    private let client: HTTPClient
    private let tls: ClientTLS?
    private let logger: Logger

    /// Creates a client for the publisher at `baseURL` (such as `https://127.0.0.1:7443`),
    /// using `client` (configured with the issuer's client certificate); with `tls`, each
    /// request presents `tls`'s current certificate, so a reloaded one takes effect.
    public init(baseURL: String, client: HTTPClient, tls: ClientTLS? = nil, logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.client = client
        self.tls = tls
        self.logger = logger
    }

    /// One attempt.
    public func register(_ registration: KeyRegistration) async throws(Failure) -> Outcome {
        var request = HTTPClientRequest(url: baseURL + "/internal/v1/keys")
        request.tlsConfiguration = tls?.configuration
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: registration.jsonValue.serializedBytes()))
        let response: HTTPClientResponse
        let body: String
        do {
            response = try await client.execute(request, timeout: .seconds(5))
            body = String(buffer: try await response.body.collect(upTo: 64 * 1024))
        } catch {
            throw Failure(
                kind: .unreachable, status: nil,
                description: "the publisher at \(baseURL) could not be reached: \(error); check issuer.publisher.url and that ekey-jwks runs there")
        }
        switch response.status.code {
        case 201:
            return .created
        case 200:
            return .alreadyRegistered
        case 500...599:
            throw Failure(kind: .serverError, status: Int(response.status.code), description: "the publisher answered \(response.status.code): \(body)")
        case 410:
            throw Failure(
                kind: .keyRevoked, status: 410,
                description: "the publisher answered 410: kid \(registration.keyID) was revoked by an administrator; never sign with this key again: \(body)")
        default:
            let hint: String
            switch response.status.code {
            case 401: hint = "the publisher saw no client certificate; set issuer.publisher.cert and key"
            case 403: hint = "add this issuer's identity to jwks.authorized_issuers"
            case 409: hint = "another key is registered under this kid; generate a new key"
            default: hint = "the key registration was refused"
            }
            throw Failure(kind: .refused, status: Int(response.status.code), description: "the publisher answered \(response.status.code) (\(hint)): \(body)")
        }
    }

    /// Registers, retrying retryable failures with exponential backoff; throws the last
    /// failure when it is final or the attempts are spent, `CancellationError` when cancelled.
    /// The pauses between attempts are slept on `clock`.
    public func registerWithRetry(
        _ registration: KeyRegistration, backoff: Backoff = .init(), clock: any Clock<Duration> = ContinuousClock()
    ) async throws -> Outcome {
        var delay = backoff.initialDelay
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await register(registration)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                guard error.isRetryable, backoff.maximumAttempts.map({ attempt < $0 }) ?? true else {
                    throw error
                }
                logger.warning(
                    "key registration failed; retrying",
                    metadata: ["kid": .string(registration.keyID), "attempt": .stringConvertible(attempt), "error": .string(error.description)])
                try await clock.sleep(for: delay)
                delay = min(delay * 2, backoff.maximumDelay)
            }
        }
    }
}
