public import EKeyProtocol

/// Step 4: the request's method and path match the token's `cap.action` or a `cap.subcap`
/// entry; else 403 `capability_mismatch` (`insufficient_scope` in the challenge).
public enum CapabilityCheck {
    /// The capability entry that matched, as written in the token.
    public static func check(_ token: VerifiedEKey, method: String, target: RequestTarget, scheme: AuthorizationScheme) throws(Rejection) -> CapabilityAction {
        guard let action = token.claims.capability.matchingAction(method: method, target: target) else {
            throw Rejection(
                EKeyError(.capabilityMismatch, "\(method) \(target.path) is outside this token's capability (\(token.claims.capability.action))"),
                scheme: scheme, outcome: .capabilityMismatch, token: token.claims)
        }
        return action
    }
}
