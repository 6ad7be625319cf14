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

    /// Creates an empty registry.
    public init() {}

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

    /// The Prometheus text exposition.
    public func exposition() -> String {
        registry.emitToString()
    }
}
