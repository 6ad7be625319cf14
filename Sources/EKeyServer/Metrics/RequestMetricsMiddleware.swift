public import Hummingbird

/// Records every request of a Hummingbird router in `ekey_request_seconds{route,
/// status_class}`. `route` is the first of `routes` (patterns such as
/// `/internal/v1/keys/:kid`) that matches the path, else `other`, so the label set stays
/// bounded whatever paths clients send.
public struct RequestMetricsMiddleware: RouterMiddleware {
    let metrics: MetricsRegistry
    let routes: [[Substring]]

    /// Creates the middleware over the router's route patterns.
    public init(_ metrics: MetricsRegistry, routes: [String]) {
        self.metrics = metrics
        self.routes = routes.map { $0.split(separator: "/", omittingEmptySubsequences: false) }
    }

    public func handle(
        _ request: Request, context: EKeyRequestContext, next: (Request, EKeyRequestContext) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        let route = label(for: request.uri.path)
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: route, status: response.status.code, ContinuousClock.now - started)
            return response
        } catch let error as any HTTPResponseError {
            metrics.recordRequest(route: route, status: error.status.code, ContinuousClock.now - started)
            throw error
        } catch {
            metrics.recordRequest(route: route, status: 500, ContinuousClock.now - started)
            throw error
        }
    }

    func label(for path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for pattern in routes where pattern.count == segments.count {
            if zip(pattern, segments).allSatisfy({ $0.hasPrefix(":") ? !$1.isEmpty : $0 == $1 }) {
                return pattern.joined(separator: "/")
            }
        }
        return "other"
    }
}
