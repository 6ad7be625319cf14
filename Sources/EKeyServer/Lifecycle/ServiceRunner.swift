public import Logging
public import ServiceLifecycle
public import UnixSignals

/// Runs a service's parts (its application, the admin listener, refreshers) in one
/// `ServiceGroup`: SIGTERM or SIGINT starts a graceful shutdown (listeners stop
/// accepting, in-flight requests finish), cut short after `shutdownDeadline`.
public enum ServiceRunner {
    /// Runs until every part ends or a signal stops the group; returns normally after a
    /// graceful shutdown so the process exits 0. Tests running a service inside their own
    /// process pass no `signals`.
    public static func run(
        _ services: [any Service], logger: Logger, shutdownDeadline: Duration = .seconds(10), signals: [UnixSignal] = [.sigterm, .sigint]
    ) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: signals,
            cancellationSignals: [],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownDeadline
        try await ServiceGroup(configuration: configuration).run()
    }
}
