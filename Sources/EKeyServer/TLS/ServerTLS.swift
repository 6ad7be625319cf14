import Crypto
public import EKeyConfig
import Foundation
public import Logging
import NIOConcurrencyHelpers
public import NIOSSL
public import ServiceLifecycle
import Dispatch
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
public final class ServerTLS: ReloadableTLS {
    public typealias ReloadOutcome = TLSReloadOutcome

    private struct Loaded: Sendable {
        var context: NIOSSLContext
        /// The leaf certificate's `notAfter`, when it parses.
        var notAfter: Date?
    }

    private enum Source: Sendable {
        case fixed(Loaded)
        case files(WatchedTLSFiles<Loaded>)
    }

    private let source: Source
    /// The config key of the files (`gateway.tls`), named in logs.
    public let configKey: String

    /// A context built once from `configuration` (tests, embedding); it never reloads.
    public init(configuration: TLSConfiguration) throws {
        configKey = "tls"
        let leaf = configuration.certificateChain.first.flatMap { source -> NIOSSLCertificate? in
            if case .certificate(let certificate) = source { return certificate }
            return nil
        }
        source = .fixed(Loaded(context: try Self.context(configuration), notAfter: leaf.flatMap(Self.notAfter)))
    }

    /// The context of `files`, reloadable; errors name the files by their keys under
    /// `configKey` (such as `gateway.tls`).
    public init(files: TLSFiles, configKey: String) throws {
        self.configKey = configKey
        source = .files(
            try WatchedTLSFiles(paths: [files.cert, files.key, files.clientCA].compactMap { $0 }) {
                Loaded(context: try Self.context(files, configKey: configKey), notAfter: Self.notAfter(ofFile: files.cert))
            })
    }

    private var loaded: Loaded {
        switch source {
        case .fixed(let loaded): loaded
        case .files(let watched): watched.material
        }
    }

    /// The context new connections use.
    public var context: NIOSSLContext { loaded.context }

    /// Loads the files again if their bytes changed.
    public func reload() -> ReloadOutcome {
        guard case .files(let watched) = source else { return .notFromFiles }
        return watched.reload()
    }

    /// `ekey_tls_certificate_expiry_seconds{listener}`: seconds until the certificate in
    /// use expires (negative once it has), for the registry's scrape hook.
    public func expiryExposition(listener: String) -> String {
        guard let notAfter = loaded.notAfter else { return "" }
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

}

/// What a reload of TLS files did.
public enum TLSReloadOutcome: Sendable, Equatable {
    /// The files hold the bytes already loaded.
    case unchanged
    /// New files were loaded; new connections use them.
    case reloaded
    /// The files changed but cannot be used; the message says why. The old material stays.
    case refused(String)
    /// The material was built from a configuration, not files: nothing to reload.
    case notFromFiles
}

/// TLS material read from files that ``TLSReloadService`` reloads when they change.
public protocol ReloadableTLS: AnyObject, Sendable {
    /// The config key of the files (such as `gateway.tls`, `issuer.publisher`), for logs.
    var configKey: String { get }
    /// Loads the files again if their bytes changed.
    func reload() -> TLSReloadOutcome
}

/// TLS material loaded from files, and the SHA-256 of the bytes it was loaded from: a
/// reload loads again only when the bytes changed, and keeps the material in use when the
/// new files do not load. Files are read by path each time (symlink swaps and renames are
/// seen).
final class WatchedTLSFiles<Material: Sendable>: Sendable {
    private let paths: [String]
    private let load: @Sendable () throws -> Material
    private let state: NIOLockedValueBox<(material: Material, fingerprint: [UInt8]?)>

    /// Loads the material now; `load` throws errors that name the files' config keys.
    init(paths: [String], load: @escaping @Sendable () throws -> Material) throws {
        self.paths = paths
        self.load = load
        let fingerprint = try? Self.fingerprint(paths)
        state = NIOLockedValueBox((try load(), fingerprint))
    }

    /// The material in use.
    var material: Material { state.withLockedValue { $0.material } }

    func reload() -> TLSReloadOutcome {
        let fingerprint: [UInt8]
        do {
            fingerprint = try Self.fingerprint(paths)
        } catch {
            return .refused("cannot read the TLS files (\(error)); keeping the certificate in use")
        }
        guard fingerprint != state.withLockedValue({ $0.fingerprint }) else { return .unchanged }
        do {
            let material = try load()
            state.withLockedValue { $0 = (material, fingerprint) }
            return .reloaded
        } catch {
            return .refused("\(error); keeping the certificate in use until the files hold a matching pair")
        }
    }

    private static func fingerprint(_ paths: [String]) throws -> [UInt8] {
        var hash = SHA256()
        for path in paths {
            hash.update(data: try Data(contentsOf: URL(fileURLWithPath: path)))
            hash.update(data: [0])
        }
        return Array(hash.finalize())
    }
}

/// Reloads a service's TLS material (its listener's ``ServerTLS``, its internal clients'
/// ``ClientTLS``) every `interval` and at once on SIGHUP, logging each change and each
/// refused file set. Stops with the service group.
public struct TLSReloadService: Service {
    let items: [any ReloadableTLS]
    let interval: Duration
    let logger: Logger

    /// Checks the files of `items` every `interval` (10 s by default) and on SIGHUP.
    public init(_ items: [any ReloadableTLS], interval: Duration = .seconds(10), logger: Logger) {
        self.items = items
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // SIGHUP through a dispatch source: nothing here waits on a signal, so the service
        // ends as soon as the group stops it, even during start-up.
        signal(SIGHUP, SIG_IGN)
        let hangups = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        let items = self.items
        let report = self.report
        hangups.setEventHandler {
            for item in items { report(item.reload(), item, "SIGHUP") }
        }
        hangups.resume()
        defer { hangups.cancel() }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isCancelled && !Task.isShuttingDownGracefully else { break }
            for item in items { report(item.reload(), item, "file check") }
        }
    }

    private var report: @Sendable (TLSReloadOutcome, any ReloadableTLS, String) -> Void {
        { [logger] outcome, item, trigger in Self.report(outcome, of: item, trigger: trigger, logger: logger) }
    }

    private static func report(_ outcome: TLSReloadOutcome, of item: any ReloadableTLS, trigger: String, logger: Logger) {
        let metadata: Logger.Metadata = ["trigger": .string(trigger), "tls": .string(item.configKey)]
        switch outcome {
        case .reloaded:
            logger.notice("TLS certificate reloaded; new connections use it", metadata: metadata)
        case .refused(let reason):
            logger.error("TLS certificate not reloaded: \(reason)", metadata: metadata)
        case .unchanged, .notFromFiles:
            if trigger == "SIGHUP" {
                logger.info("SIGHUP: the TLS files are unchanged", metadata: metadata)
            }
        }
    }
}
