public import EKeyProtocol

/// Step 0 (docs/spec/token.md, docs/spec/gateway.md): the request path must pass the path rules before anything
/// else is looked at, and must fall under a route.
public enum PathCheck {
    /// The checked target and its route, or a 400 (bad path) / 404 (no route).
    public static func check(target: String, routes: RouteTable) throws(Rejection) -> (RequestTarget, Route) {
        let checked: RequestTarget
        do {
            checked = try RequestTarget(validating: target)
        } catch {
            throw Rejection(error, scheme: nil, outcome: .invalidRequest)
        }
        guard let route = routes.route(for: checked.path) else {
            throw Rejection(
                EKeyError(.invalidRequest, "no route serves \(checked.path); check the URL or gateway.routes", status: 404),
                scheme: nil, outcome: .invalidRequest)
        }
        return (checked, route)
    }
}
