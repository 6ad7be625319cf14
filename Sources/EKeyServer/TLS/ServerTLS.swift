import Crypto
public import EKeyConfig
import Foundation
public import Logging
import NIOConcurrencyHelpers
public import NIOSSL
public import ServiceLifecycle
import UnixSignals
import SwiftASN1
import X509

/// The TLS context of a service's main listener (ALPN `h2` and `http/1.1`), reloaded when
/// its certificate, key or client CA files change.
///
/// Every new connection takes the context current at its accept; connections already open
/// keep the one they started with, so a rotation drops nothing. ``reload()`` reads the three
/// files, and when their bytes differ from the loaded ones builds a new context with the same
/// checks as at start (``TLSSetup/server(certificateFile:keyFile:clientCAFile:clientCertificates:minimumVersion:configKey:)``).
/// A pair that does not load (a key written before its certificate, a half-written file)
/// is refused and the current context stays: the service never serves without TLS or with a
/// broken pair. Files are read by path each time, so the atomic symlink swap of a Kubernetes
/// Secret volume (`..data`), cert-manager's and SPIRE's helpers' renames are all seen.
public final class ServerTLS: Sendable {
    /// What a reload did.
    public enum ReloadOutcome: Sendable, Equatable {
        /// The files hold the bytes already loaded.
        case unchanged
        /// New files were loaded; new connections use them.
        case reloaded
        /// The files changed but cannot be used; the message says why. The old context stays.
        case refused(String)
        /// The context was built from a configuration, not files: nothing to reload.
        case notFromFiles
    }

    private struct Loaded {
        var context: NIOSSLContext
        var fingerprint: [UInt8]?
        /// The leaf certificate's `notAfter`, when it parses.
        var notAfter: Date?
    }

    private let files: TLSFiles?
    private let configKey: String
    private let loaded: NIOLockedValueBox<Loaded>

    /// A context built once from `configuration` (tests, embedding); it never reloads.
    public init(configuration: TLSConfiguration) throws {
        files = nil
        configKey = "tls"
        let leaf = configuration.certificateChain.first.flatMap { source -> NIOSSLCertificate? in
            if case .certificate(let certificate) = source { return certificate }
            return nil
        }
        loaded = NIOLockedValueBox(
            Loaded(context: try Self.context(configuration), fingerprint: nil, notAfter: leaf.flatMap(Self.notAfter)))
    }

    /// The context of `files`, reloadable; errors name the files by their keys under
    /// `configKey` (such as `gateway.tls`).
    public init(files: TLSFiles, configKey: String) throws {
        self.files = files
        self.configKey = configKey
        let fingerprint = try? Self.fingerprint(files)
        loaded = NIOLockedValueBox(
            Loaded(context: try Self.context(files, configKey: configKey), fingerprint: fingerprint, notAfter: Self.notAfter(ofFile: files.cert)))
    }

    /// The context new connections use.
    public var context: NIOSSLContext {
        loaded.withLockedValue { $0.context }
    }

    /// Loads the files again if their bytes changed.
    public func reload() -> ReloadOutcome {
        guard let files else { return .notFromFiles }
        let fingerprint: [UInt8]
        do {
            fingerprint = try Self.fingerprint(files)
        } catch {
            return .refused("\(configKey): cannot read the TLS files (\(error)); keeping the certificate in use")
        }
        guard fingerprint != loaded.withLockedValue({ $0.fingerprint }) else { return .unchanged }
        do {
            let context = try Self.context(files, configKey: configKey)
            let notAfter = Self.notAfter(ofFile: files.cert)
            loaded.withLockedValue { $0 = Loaded(context: context, fingerprint: fingerprint, notAfter: notAfter) }
            return .reloaded
        } catch {
            return .refused("\(error); keeping the certificate in use until the files hold a matching pair")
        }
    }

    /// `ekey_tls_certificate_expiry_seconds{listener}`: seconds until the certificate in
    /// use expires (negative once it has), for the registry's scrape hook.
    public func expiryExposition(listener: String) -> String {
        guard let notAfter = loaded.withLockedValue({ $0.notAfter }) else { return "" }
        return "# TYPE ekey_tls_certificate_expiry_seconds gauge\n"
            + "ekey_tls_certificate_expiry_seconds{listener=\"\(listener)\"} \(notAfter.timeIntervalSinceNow.rounded())\n"
    }

    private static func notAfter(ofFile path: String) -> Date? {
        (try? NIOSSLCertificate.fromPEMFile(path))?.first.flatMap(notAfter)
    }

    private static func notAfter(_ certificate: NIOSSLCertificate) -> Date? {
        (try? certificate.toDERBytes()).flatMap { try? Certificate(derEncoded: $0) }?.notValidAfter
    }

    private static func context(_ files: TLSFiles, configKey: String) throws -> NIOSSLContext {
        try context(
            TLSSetup.server(
                certificateFile: files.cert, keyFile: files.key, clientCAFile: files.clientCA, clientCertificates: files.clientAuth,
                minimumVersion: files.minVersion, configKey: configKey))
    }

    private static func context(_ configuration: TLSConfiguration) throws -> NIOSSLContext {
        var configuration = configuration
        configuration.applicationProtocols = ["h2", "http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }

    /// SHA-256 over the certificate, key and client CA files' bytes.
    private static func fingerprint(_ files: TLSFiles) throws -> [UInt8] {
        var hash = SHA256()
        for path in [files.cert, files.key, files.clientCA].compactMap({ $0 }) {
            hash.update(data: try Data(contentsOf: URL(fileURLWithPath: path)))
            hash.update(data: [0])
        }
        return Array(hash.finalize())
    }
}

/// Reloads a service's ``ServerTLS`` every `interval` and at once on SIGHUP, logging each
/// change and each refused file set. Stops with the service group.
public struct TLSReloadService: Service {
    let tls: ServerTLS
    let interval: Duration
    let logger: Logger

    /// Checks the files every `interval` (10 s by default) and on SIGHUP.
    public init(_ tls: ServerTLS, interval: Duration = .seconds(10), logger: Logger) {
        self.tls = tls
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups.cancelOnGracefulShutdown() {
                    report(tls.reload(), trigger: "SIGHUP")
                }
            }
            group.addTask {
                while !Task.isCancelled, !Task.isShuttingDownGracefully {
                    do {
                        try await Task.sleep(for: interval)
                    } catch {
                        return
                    }
                    report(tls.reload(), trigger: "file check")
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func report(_ outcome: ServerTLS.ReloadOutcome, trigger: String) {
        switch outcome {
        case .reloaded:
            logger.notice("TLS certificate reloaded; new connections use it", metadata: ["trigger": .string(trigger)])
        case .refused(let reason):
            logger.error("TLS certificate not reloaded: \(reason)", metadata: ["trigger": .string(trigger)])
        case .unchanged, .notFromFiles:
            if trigger == "SIGHUP" {
                logger.info("SIGHUP: the TLS files are unchanged", metadata: ["trigger": .string(trigger)])
            }
        }
    }
}
