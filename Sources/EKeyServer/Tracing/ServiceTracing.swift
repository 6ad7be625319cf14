public import EKeyConfig
import Foundation
public import HTTPTypes
public import Logging
import OTel
public import ServiceLifecycle
public import Synchronization
public import Tracing

/// OpenTelemetry traces of a service, exported over OTLP/HTTP (protobuf) by swift-otel.
///
/// Off unless `tracing.endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not `true`);
/// the other standard `OTEL_*` variables (sampler, headers, TLS files, batch delays) apply
/// on top. When off, nothing is bootstrapped and ``isEnabled`` is `false`: the hot paths
/// check it first, so a request pays one atomic load and no span bookkeeping.
public enum ServiceTracing {
    @usableFromInline static let enabled = Atomic<Bool>(false)

    /// Whether spans are recorded in this process (inlined into the hot paths).
    @inlinable public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Bootstraps the process's tracer when tracing is configured, and returns the
    /// service that batches and exports spans (run it first in the group, so it stops
    /// last and flushes what the listeners finished); `nil` when tracing is off.
    public static func start(_ config: TracingConfig, service: String, logger: Logger) throws -> (any Service)? {
        let environment = ProcessInfo.processInfo.environment
        let fromEnvironment = environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
        guard config.endpoint != nil || fromEnvironment != nil,
            environment["OTEL_SDK_DISABLED"]?.lowercased() != "true"
        else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = service
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.diagnosticLogger = .custom(logger)
        configuration.propagators = [.traceContext]
        if let endpoint = config.endpoint {
            let base = endpoint.absoluteString
            configuration.traces.otlpExporter.endpoint =
                endpoint.path.isEmpty || endpoint.path == "/" ? (base.hasSuffix("/") ? base : base + "/") + "v1/traces" : base
        }
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        enabled.store(true, ordering: .relaxed)
        logger.info(
            "tracing on: spans go over OTLP/HTTP",
            metadata: ["endpoint": .string(fromEnvironment ?? configuration.traces.otlpExporter.endpoint)])
        return backend.service
    }

    /// Runs `body` as a child span of the current one when tracing is on; just runs it when off.
    public static func span<Value, Failure: Error>(
        _ name: String, _ body: () async throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        guard isEnabled else { return try await body() }
        // withSpan throws untyped errors: the typed one is carried across it in a Result.
        let outcome: Result<Value, Failure> = await withSpan(name) { span in
            do throws(Failure) {
                return .success(try await body())
            } catch {
                span.setStatus(.init(code: .error))
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// The trace context a request carries (`traceparent`, `tracestate`), for its server span.
    public static func context(of fields: HTTPFields) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(fields, into: &context, using: HTTPFieldsPropagation())
        return context
    }

    /// Adds the current span's `traceparent` to request fields sent on (the upstream call).
    public static func inject(into fields: inout HTTPFields) {
        guard isEnabled, let context = ServiceContext.current else { return }
        InstrumentationSystem.instrument.inject(context, into: &fields, using: HTTPFieldsPropagation())
    }
}

/// Reads and writes trace propagation header fields on `HTTPFields`.
struct HTTPFieldsPropagation: Extractor, Injector {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { carrier[$0] }
    }

    func inject(_ value: String, forKey key: String, into carrier: inout HTTPFields) {
        if let name = HTTPField.Name(key) {
            carrier[name] = value
        }
    }
}
