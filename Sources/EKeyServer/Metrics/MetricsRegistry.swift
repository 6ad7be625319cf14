import Foundation
import NIOConcurrencyHelpers
public import Prometheus

/// One Prometheus registry per service, exported on the admin `/metrics`.
///
/// Metrics are made straight on the registry (no global swift-metrics bootstrap), so the
/// exported names are exactly docs/spec/observability.md's and tests can run several services in one
/// process. Labelled series appear at their first increment; counters without labels
/// are created at start so they export 0.
public final class MetricsRegistry: Sendable {
    /// The underlying registry.
    public let registry = PrometheusCollectorRegistry()

    /// Buckets for latency histograms, in seconds: 100 µs to 10 s.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// Text added to each exposition by its owner (certificate expiry), read at scrape time.
    private let scrapeHooks = NIOLockedValueBox<[@Sendable () -> String]>([])
    /// `ekey_request_seconds` by route, one histogram per status class (`1xx` … `5xx`),
    /// made at a route's first request of that class instead of looked up per request.
    private let requestHistograms = NIOLockedValueBox<[String: [DurationHistogram?]]>([:])

    /// Creates a registry holding `ekey_build_info{version}` (always 1).
    public init() {
        registry.makeGauge(name: "ekey_build_info", labels: [("version", BuildInfo.version)]).set(Int64(1))
    }

    /// Adds text (whole exposition lines) computed at each scrape.
    public func onScrape(_ lines: @escaping @Sendable () -> String) {
        scrapeHooks.withLockedValue { $0.append(lines) }
    }

    /// Records a request answered by a service's main listener: `ekey_request_seconds`
    /// with `route` (a bounded label: the route or endpoint, never the raw path) and
    /// `status_class` (`2xx` … `5xx`).
    public func recordRequest(route: String, status: Int, _ duration: Duration) {
        let statusClass = status / 100
        guard (1...5).contains(statusClass) else {
            record("ekey_request_seconds", duration, labels: [("route", route), ("status_class", "\(statusClass)xx")])
            return
        }
        let histogram = requestHistograms.withLockedValue { byRoute in
            if let made = byRoute[route]?[statusClass - 1] { return made }
            let made = latency("ekey_request_seconds", [("route", route), ("status_class", "\(statusClass)xx")])
            byRoute[route, default: Array(repeating: nil, count: 5)][statusClass - 1] = made
            return made
        }
        histogram.record(duration)
    }

    /// A counter, created on first use for each label set.
    public func counter(_ name: String, _ labels: [(String, String)] = []) -> Counter {
        labels.isEmpty ? registry.makeCounter(name: name) : registry.makeCounter(name: name, labels: labels)
    }

    /// A latency histogram in seconds.
    public func latency(_ name: String, _ labels: [(String, String)] = []) -> DurationHistogram {
        registry.makeDurationHistogram(name: name, labels: labels, buckets: Self.latencyBuckets)
    }

    /// Adds `amount` to a counter.
    public func increment(_ name: String, _ labels: [(String, String)] = [], by amount: Int = 1) {
        counter(name, labels).increment(by: Int64(amount))
    }

    /// Records one latency observation.
    public func record(_ name: String, _ duration: Duration, labels: [(String, String)] = []) {
        latency(name, labels).record(duration)
    }

    /// The Prometheus text exposition, with the process metrics and the scrape hooks' lines.
    public func exposition() -> String {
        registry.emitToString() + ProcessMetrics.exposition() + scrapeHooks.withLockedValue { $0 }.map { $0() }.joined()
    }
}
