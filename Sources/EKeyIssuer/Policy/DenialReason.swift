/// Why a token request was refused: the `reason` of the audit event and the label of
/// `ekey_issue_denied_total` (docs/spec/observability.md).
public struct DenialReason: Sendable, Hashable, CustomStringConvertible {
    /// The label value.
    public let name: String

    private init(_ name: String) { self.name = name }

    public var description: String { name }

    // MARK: Policy (403 access_denied)

    /// No template lists the caller's identity.
    public static let unknownIdentity = DenialReason("unknown_identity")
    /// The audience is not in the template's `audiences`.
    public static let audienceNotAllowed = DenialReason("audience_not_allowed")
    /// An action (or subcap entry) is not covered by the template's `actions`.
    public static let actionNotAllowed = DenialReason("action_not_allowed")
    /// `cap.limit` is over the template's `max_limit`.
    public static let limitTooHigh = DenialReason("limit_too_high")
    /// `ttl` is over the template's `max_ttl`.
    public static let ttlTooLong = DenialReason("ttl_too_long")
    /// The binding mode is not in the template's `binds`.
    public static let bindNotAllowed = DenialReason("bind_not_allowed")
    /// The body's `sub` differs from the identity and is not in `delegate_subjects`.
    public static let subjectNotAllowed = DenialReason("subject_not_allowed")

    // MARK: Before or after policy

    /// The body or a header is malformed (400 invalid_request).
    public static let invalidRequest = DenialReason("invalid_request")
    /// Client authentication is missing or failed (401 invalid_client).
    public static let invalidClient = DenialReason("invalid_client")
    /// The identity's issuance rate is used up (429 rate_limited).
    public static let rateLimited = DenialReason("rate_limited")
}
