public import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Registers public signing keys with the JWKS publisher; ``KeyRegistrationClient`` in
/// production, a stand-in in tests. A refusal because the kid was revoked must be thrown as
/// a `KeyRegistrationClient.Failure` of kind `.keyRevoked`.
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

/// The issuer's signing keys (docs/spec/issuer.md).
///
/// - Signs only with a key the publisher has accepted: ``activeKey()`` is `nil` until the
///   first registration succeeded, and `/readyz` stays 503 until then.
/// - Re-registers every live key every ``Schedule/reRegisterEvery`` (idempotent), so a
///   publisher that lost its store heals by itself.
/// - Rotates generated keys every ``Schedule/rotateEvery``: registers the new key, switches
///   to it, then re-registers the old one with `not_after` = switch time + the longest token
///   lifetime + skew, so every token it signed still verifies until it expires.
/// - A shared `key_file` key is never rotated.
/// - When a registration of the current key is answered 410 (an administrator revoked its
///   kid), stops signing with it at once and never registers it again. A generated key is
///   replaced: a new one is generated and registered, and signing resumes once the
///   publisher accepted it. A `key_file` key cannot be replaced: issuing stops, `/readyz`
///   reports it, until the file holds a new key and the issuer is restarted. A revoked
///   retired key is just dropped.
///
/// Run it as a `Service`.
public actor SigningKeyManager: Service {
    /// The key tokens are signed with now.
    public struct ActiveKey: Sendable {
        public let keyID: String
        public let key: PrivateSigningKey
        let revocation: RevocationFlag

        /// Whether the publisher has revoked this key since it was handed out: a token
        /// signed with it must not be issued.
        public var isRevoked: Bool { revocation.isSet }
    }

    /// Why no key can sign.
    public enum Unavailability: Sendable, Equatable {
        /// No key is registered yet: at start, or while a new key replaces a revoked one.
        case notRegistered
        /// The publisher revoked the key of `issuer.signing.key_file` at `path`; only a
        /// new file (and a restart) brings the issuer back.
        case keyFileRevoked(path: String, keyID: String)

        /// The `error_description` of `/token`'s 503.
        public var tokenErrorDescription: String {
            switch self {
            case .notRegistered:
                return "no signing key is registered with the JWKS publisher yet; retry shortly"
            case .keyFileRevoked(let path, let keyID):
                return "the configured signing key (issuer.signing.key_file \(path), kid \(keyID)) was revoked at the JWKS publisher; this issuer signs nothing until an operator replaces \(path) with a new key and restarts it"
            }
        }

        /// The `/readyz` problem.
        public var readinessProblem: String {
            switch self {
            case .notRegistered:
                return "no signing key is registered with the JWKS publisher yet"
            case .keyFileRevoked(let path, let keyID):
                return "the signing key in issuer.signing.key_file \(path) (kid \(keyID)) was revoked at the JWKS publisher; replace the file with a new key and restart the issuer"
            }
        }
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

    /// Set once the publisher revoked a key; read without entering the actor.
    final class RevocationFlag: Sendable {
        private let value = Atomic<Bool>(false)

        var isSet: Bool { value.load(ordering: .acquiring) }

        func set() { value.store(true, ordering: .releasing) }
    }

    private struct Entry {
        let keyID: String
        let key: PrivateSigningKey
        var notAfter: Int64?
        let revocation = RevocationFlag()

        init(key: PrivateSigningKey) {
            self.keyID = SigningKeyManager.keyID(for: key)
            self.key = key
        }

        var registration: KeyRegistration {
            KeyRegistration(keyID: keyID, jwk: key.publicKey.jwk.with(keyID: keyID, algorithm: key.algorithm), notAfter: notAfter)
        }
    }

    /// Where the current key stands with the publisher.
    private enum Status {
        case registering
        case registered
        /// Revoked: never signs or registers again.
        case revoked
    }

    private let registrar: any SigningKeyRegistrar
    private let schedule: Schedule
    private let algorithm: JWSAlgorithm
    private let keyFile: String?
    private let logger: Logger
    private let now: @Sendable () -> Int64
    /// Times rotation and re-registration.
    private let clock: any Clock<Duration>
    private var current: Entry {
        didSet { publishActiveKey() }
    }
    private var status = Status.registering {
        didSet { publishActiveKey() }
    }
    /// ``activeKey()``'s answer, kept beside the actor's state so each token is signed
    /// without entering the actor.
    private let signable = Mutex<ActiveKey?>(nil)
    private var retired: [Entry] = []

    /// Creates a manager for `initialKey`: generated, or read from `keyFile` (the path of
    /// `issuer.signing.key_file`, named when the publisher revokes the key). `clock` times
    /// the ``Schedule``.
    public init(
        initialKey: PrivateSigningKey, keyFile: String? = nil, schedule: Schedule, registrar: any SigningKeyRegistrar, logger: Logger,
        now: @escaping @Sendable () -> Int64 = WallClock.epochSeconds, clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.current = Entry(key: initialKey)
        self.algorithm = initialKey.algorithm
        self.keyFile = keyFile
        self.schedule = schedule
        self.registrar = registrar
        self.logger = logger
        self.now = now
        self.clock = clock
    }

    /// A key's `kid`: its RFC 7638 thumbprint, so replicas sharing a `key_file` agree on it.
    public static func keyID(for key: PrivateSigningKey) -> String {
        key.publicKey.jwk.thumbprint
    }

    /// The key to sign with, `nil` until the publisher accepted one or after it revoked it.
    public nonisolated func activeKey() -> ActiveKey? {
        signable.withLock { $0 }
    }

    private func publishActiveKey() {
        let active = status == .registered ? ActiveKey(keyID: current.keyID, key: current.key, revocation: current.revocation) : nil
        signable.withLock { $0 = active }
    }

    /// Why no key can sign; `nil` when one can.
    public var unavailability: Unavailability? {
        switch status {
        case .registered: return nil
        case .registering: return .notRegistered
        case .revoked: return keyFile.map { .keyFileRevoked(path: $0, keyID: current.keyID) } ?? .notRegistered
        }
    }

    /// Whether a registered key is ready (part of `/readyz`).
    public var isReady: Bool { status == .registered }

    /// The `kid`s still published by this issuer: the current one first (unless revoked).
    public var liveKeyIDs: [String] { (status == .revoked ? [] : [current.keyID]) + retired.map(\.keyID) }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.maintain() }
        } catch is CancellationError {
            return
        }
    }

    private func maintain() async throws {
        try await registerCurrent()
        let clock: any Clock<Duration> = self.clock
        try await maintain(on: clock)
    }

    private func maintain(on clock: some Clock<Duration>) async throws {
        var nextRotation = schedule.rotateEvery.map { clock.now.advanced(by: $0) }
        var nextReRegistration = clock.now.advanced(by: schedule.reRegisterEvery)
        while !Task.isCancelled {
            let wake = nextRotation.map { min($0, nextReRegistration) } ?? nextReRegistration
            try await clock.sleep(until: wake, tolerance: nil)
            if let rotation = nextRotation, clock.now >= rotation {
                try await rotate()
                nextRotation = schedule.rotateEvery.map { clock.now.advanced(by: $0) }
            }
            if clock.now >= nextReRegistration {
                try await reRegister()
                nextReRegistration = clock.now.advanced(by: schedule.reRegisterEvery)
            }
        }
    }

    private func registerCurrent() async throws {
        do {
            try await registrar.publishWithRetry(current.registration)
        } catch let failure as KeyRegistrationClient.Failure where failure.kind == .keyRevoked {
            try await currentKeyRevoked(failure)
            return
        }
        status = .registered
        logger.info("signing key registered with the publisher", metadata: ["kid": .string(current.keyID), "alg": .string(algorithm.rawValue)])
    }

    /// The publisher answered 410 for the current key: stop signing with it before anything
    /// else, then replace it (generated keys) or stop issuing (`key_file`).
    private func currentKeyRevoked(_ failure: KeyRegistrationClient.Failure) async throws {
        status = .revoked
        current.revocation.set()
        let revokedKeyID = current.keyID
        if let keyFile {
            logger.error(
                "the signing key in issuer.signing.key_file \(keyFile) was revoked at the JWKS publisher; no token is issued until the file holds a new key and the issuer is restarted",
                metadata: ["kid": .string(revokedKeyID), "key_file": .string(keyFile), "error": .string(failure.description)])
            return
        }
        logger.warning(
            "the JWKS publisher revoked the signing key; nothing more is signed with it, and tokens are refused (503) until a new key is registered",
            metadata: ["kid": .string(revokedKeyID), "error": .string(failure.description)])
        let replacement = Entry(key: PrivateSigningKey(generating: algorithm))
        try await registrar.publishWithRetry(replacement.registration)
        current = replacement
        status = .registered
        logger.info(
            "a new signing key replaced the revoked one", metadata: ["kid": .string(replacement.keyID), "revoked_kid": .string(revokedKeyID)])
    }

    private func rotate() async throws {
        guard status == .registered else { return }
        let entry = Entry(key: PrivateSigningKey(generating: algorithm))
        try await registrar.publishWithRetry(entry.registration)
        var old = current
        current = entry
        old.notAfter = now() + Int64(schedule.retiredKeyOverlap.components.seconds)
        retired.append(old)
        logger.info(
            "signing key rotated", metadata: ["kid": .string(entry.keyID), "retired_kid": .string(old.keyID), "retired_not_after": .stringConvertible(old.notAfter ?? 0)])
        do {
            try await registrar.publish(old.registration)
        } catch let failure as KeyRegistrationClient.Failure where failure.kind == .keyRevoked {
            retiredKeyRevoked(old, failure)
        } catch {
            logger.warning("could not publish the retired key's not_after; the next re-registration retries", metadata: ["kid": .string(old.keyID), "error": "\(error)"])
        }
    }

    private func reRegister() async throws {
        let time = now()
        retired.removeAll { ($0.notAfter ?? .max) < time }
        for entry in (status == .revoked ? [] : [current]) + retired {
            do {
                try await registrar.publish(entry.registration)
            } catch let failure as KeyRegistrationClient.Failure where failure.kind == .keyRevoked {
                if entry.keyID == current.keyID {
                    try await currentKeyRevoked(failure)
                } else {
                    retiredKeyRevoked(entry, failure)
                }
            } catch {
                logger.warning("re-registration of a live signing key failed; retrying in \(schedule.reRegisterEvery)", metadata: ["kid": .string(entry.keyID), "error": "\(error)"])
            }
        }
    }

    private func retiredKeyRevoked(_ entry: Entry, _ failure: KeyRegistrationClient.Failure) {
        entry.revocation.set()
        retired.removeAll { $0.keyID == entry.keyID }
        logger.warning(
            "the JWKS publisher revoked a retired signing key; it is no longer registered", metadata: ["kid": .string(entry.keyID), "error": .string(failure.description)])
    }
}
