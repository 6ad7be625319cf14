import EKeyProtocol

extension RequestVerifier.Verified {
    /// What the upstream learns of a verified request (docs/spec/gateway.md): `X-EKey-Sub`,
    /// `X-EKey-Trace`, `X-EKey-Action` (the capability entry that matched, as written in the
    /// token) and `X-EKey-Use` (`used/limit`). The gateway adds them to the forwarded request;
    /// the authorize listener returns them for the proxy to copy.
    var identityFields: [(String, String)] {
        let claims = token.claims
        return [
            ("X-EKey-Sub", claims.subject), ("X-EKey-Trace", claims.trace), ("X-EKey-Action", action.description),
            ("X-EKey-Use", "\(used)/\(limit)"),
        ]
    }
}
