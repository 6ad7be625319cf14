public import EKeyProtocol
public import EKeyServer
import Foundation
public import Logging
public import ServiceLifecycle

/// Registers public signing keys with the JWKS publisher; ``KeyRegistrationClient`` in
/// production, a stand-in in tests.
public protocol SigningKeyRegistrar: Sendable {
    /// One attempt; throws when the key is not registered.
    func publish(_ registration: KeyRegistration) async throws
    /// Retries until registered, a final refusal, or cancellation.
    func publishWithRetry(_ registration: KeyRegistration) async throws
}

extension KeyRegistrationClient: SigningKeyRegistrar {
    public func publish(_ registration: KeyRegistration) async throws {
        _ = try await register(registration)
    }

    public func publishWithRetry(_ registration: KeyRegistration) async throws {
        _ = try await registerWithRetry(registration, backoff: .init())
    }
}

/// The issuer's signing keys (DESIGN.md §3).
///
/// - Signs only with a key the publisher has accepted: ``activeKey()`` is `nil` until the
///   first registration succeeded, and `/readyz` stays 503 until then.
/// - Re-registers every live key every ``Schedule/reRegisterEvery`` (idempotent), so a
///   publisher that lost its store heals by itself.
/// - Rotates generated keys every ``Schedule/rotateEvery``: registers the new key, switches
///   to it, then re-registers the old one with `not_after` = switch time + the longest token
///   lifetime + skew, so every token it signed still verifies until it expires.
/// - A shared `key_file` key is never rotated.
///
/// Run it as a `Service`.
public actor SigningKeyManager: Service {
    /// The key tokens are signed with now.
    public struct ActiveKey: Sendable {
        public let keyID: String
        public let key: PrivateSigningKey
    }

    /// Timing of registration and rotation.
    public struct Schedule: Sendable {
        /// Rotation period; `nil` never rotates (`key_file`).
        public var rotateEvery: Duration?
        /// Re-registration period (30 s).
        public var reRegisterEvery: Duration = .seconds(30)
        /// How long a retired key stays valid after the switch: the longest token lifetime
        /// plus the verifiers' clock skew.
        public var retiredKeyOverlap: Duration = .seconds(EKeyClaims.maximumLifetime + 5)

        /// Creates a schedule.
        public init(rotateEvery: Duration?) {
            self.rotateEvery = rotateEvery
        }
    }

    private struct Entry {
        let keyID: String
        let key: PrivateSigningKey
        var notAfter: Int64?

        var registration: KeyRegistration {
            KeyRegistration(keyID: keyID, jwk: key.publicKey.jwk.with(keyID: keyID, algorithm: key.algorithm), notAfter: notAfter)
        }
    }

    private let registrar: any SigningKeyRegistrar
    private let schedule: Schedule
    private let algorithm: JWSAlgorithm
    private let logger: Logger
    private let now: @Sendable () -> Int64
    private var current: Entry
    private var isCurrentRegistered = false
    private var retired: [Entry] = []

    /// Creates a manager for `initialKey` (generated, or read from `key_file`).
    public init(
        initialKey: PrivateSigningKey, schedule: Schedule, registrar: any SigningKeyRegistrar, logger: Logger,
        now: @escaping @Sendable () -> Int64 = Issuer.systemNow
    ) {
        self.current = Entry(keyID: Self.keyID(for: initialKey), key: initialKey, notAfter: nil)
        self.algorithm = initialKey.algorithm
        self.schedule = schedule
        self.registrar = registrar
        self.logger = logger
        self.now = now
    }

    /// A key's `kid`: its RFC 7638 thumbprint, so replicas sharing a `key_file` agree on it.
    public static func keyID(for key: PrivateSigningKey) -> String {
        key.publicKey.jwk.thumbprint
    }

    /// The key to sign with, `nil` until the publisher accepted one.
    public func activeKey() -> ActiveKey? {
        isCurrentRegistered ? ActiveKey(keyID: current.keyID, key: current.key) : nil
    }

    /// Whether a registered key is ready (part of `/readyz`).
    public var isReady: Bool { isCurrentRegistered }

    /// The `kid`s still published by this issuer: the current one first.
    public var liveKeyIDs: [String] { [current.keyID] + retired.map(\.keyID) }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.maintain() }
        } catch is CancellationError {
            return
        }
    }

    private func maintain() async throws {
        try await registerCurrent()
        let clock = ContinuousClock()
        var nextRotation = schedule.rotateEvery.map { clock.now + $0 }
        var nextReRegistration = clock.now + schedule.reRegisterEvery
        while !Task.isCancelled {
            let wake = nextRotation.map { min($0, nextReRegistration) } ?? nextReRegistration
            try await Task.sleep(until: wake, clock: clock)
            if let rotation = nextRotation, clock.now >= rotation {
                try await rotate()
                nextRotation = schedule.rotateEvery.map { clock.now + $0 }
            }
            if clock.now >= nextReRegistration {
                await reRegister()
                nextReRegistration = clock.now + schedule.reRegisterEvery
            }
        }
    }

    private func registerCurrent() async throws {
        try await registrar.publishWithRetry(current.registration)
        isCurrentRegistered = true
        logger.info("signing key registered with the publisher", metadata: ["kid": .string(current.keyID), "alg": .string(algorithm.rawValue)])
    }

    private func rotate() async throws {
        let next = PrivateSigningKey(generating: algorithm)
        let entry = Entry(keyID: Self.keyID(for: next), key: next, notAfter: nil)
        try await registrar.publishWithRetry(entry.registration)
        var old = current
        current = entry
        old.notAfter = now() + Int64(schedule.retiredKeyOverlap.components.seconds)
        retired.append(old)
        logger.info(
            "signing key rotated", metadata: ["kid": .string(entry.keyID), "retired_kid": .string(old.keyID), "retired_not_after": .stringConvertible(old.notAfter ?? 0)])
        do {
            try await registrar.publish(old.registration)
        } catch {
            logger.warning("could not publish the retired key's not_after; the next re-registration retries", metadata: ["kid": .string(old.keyID), "error": "\(error)"])
        }
    }

    private func reRegister() async {
        let time = now()
        retired.removeAll { ($0.notAfter ?? .max) < time }
        for entry in [current] + retired {
            do {
                try await registrar.publish(entry.registration)
            } catch {
                logger.warning("re-registration of a live signing key failed; retrying in \(schedule.reRegisterEvery)", metadata: ["kid": .string(entry.keyID), "error": "\(error)"])
            }
        }
    }
}
