public import EKeyConfig
public import EKeyProtocol

/// The issuance policy of `issuer.templates` (docs/spec/issuer.md): default deny; a request is
/// allowed when one template matches the identity, the audience, every action, the limit,
/// the ttl, the bind mode and (when asked for) the delegated subject.
public struct IssuancePolicy: Sendable {
    /// One template, compiled.
    public struct Template: Sendable {
        public let name: String
        public let subjects: [Glob]
        public let audiences: Set<String>
        public let actions: [CapabilityAction]
        public let maxLimit: Int
        public let maxTTL: Int64
        public let binds: Set<BindingMode>
        public let ratePerMinute: Int?
        public let delegateSubjects: [Glob]

        /// Compiles a template; a malformed action or a `max_ttl` over 60 is a config error.
        public init(_ config: TemplateConfig) throws(IssuerSetupError) {
            name = config.name
            subjects = config.subjects.map(Glob.init)
            audiences = Set(config.audiences)
            var actions: [CapabilityAction] = []
            for text in config.actions {
                do {
                    actions.append(try CapabilityAction(parsing: text))
                } catch {
                    throw IssuerSetupError("issuer.templates[\(config.name)].actions: \(error.reason)")
                }
            }
            self.actions = actions
            let ttl = config.maxTTL.components
            guard ttl.attoseconds == 0, ttl.seconds >= 1, ttl.seconds <= EKeyClaims.maximumLifetime else {
                throw IssuerSetupError("issuer.templates[\(config.name)].max_ttl is \(ttl.seconds); use 1 to 60 seconds")
            }
            maxLimit = config.maxLimit
            maxTTL = ttl.seconds
            binds = Set(config.binds.map { $0 == .dpop ? BindingMode.dpop : BindingMode.mtls })
            ratePerMinute = config.ratePerMinute
            delegateSubjects = config.delegateSubjects.map(Glob.init)
        }
    }

    /// What the policy decided.
    public enum Decision: Sendable {
        /// Issue with this template, lifetime and subject.
        case allowed(Allowance)
        /// Refuse: 403 `access_denied`.
        case denied(DenialReason, String)
    }

    /// An allowed request's terms.
    public struct Allowance: Sendable {
        /// The template that allowed it.
        public let template: Template
        /// The token lifetime in seconds.
        public let ttl: Int64
        /// The token's `sub`.
        public let subject: String
    }

    /// The templates, in configuration order.
    public let templates: [Template]

    /// Compiles `issuer.templates`.
    public init(templates: [TemplateConfig]) throws(IssuerSetupError) {
        var compiled: [Template] = []
        for template in templates {
            compiled.append(try Template(template))
        }
        self.templates = compiled
    }

    /// Decides `request` for the authenticated `identity` binding with `bind`.
    public func decide(identity: String, request: TokenRequest) -> Decision {
        var best: (depth: Int, reason: DenialReason, description: String)?
        for template in templates where template.subjects.contains(where: { $0.matches(identity) }) {
            switch evaluate(template, identity: identity, request: request) {
            case .success(let allowance):
                return .allowed(allowance)
            case .failure(let refusal):
                if best == nil || refusal.depth > best!.depth {
                    best = (refusal.depth, refusal.reason, refusal.description)
                }
            }
        }
        guard let best else {
            return .denied(.unknownIdentity, "no issuance template lists the identity \(identity); ask an operator to add it to issuer.templates")
        }
        return .denied(best.reason, best.description)
    }

    struct Refusal: Error {
        let depth: Int
        let reason: DenialReason
        let description: String
    }

    private func evaluate(_ template: Template, identity: String, request: TokenRequest) -> Result<Allowance, Refusal> {
        let name = template.name
        guard template.audiences.contains(request.audience) else {
            return .failure(Refusal(depth: 0, reason: .audienceNotAllowed, description: "template \(name) does not allow the audience \(request.audience)"))
        }
        for action in request.capability.allActions where !template.actions.contains(where: { action.isCovered(by: $0) }) {
            return .failure(Refusal(depth: 1, reason: .actionNotAllowed, description: "template \(name) does not allow the action \(action)"))
        }
        guard request.capability.limit <= template.maxLimit else {
            return .failure(Refusal(depth: 2, reason: .limitTooHigh, description: "cap.limit \(request.capability.limit) is over template \(name)'s max_limit \(template.maxLimit)"))
        }
        let ttl = request.ttl ?? min(template.maxTTL, EKeyClaims.maximumLifetime)
        guard ttl <= template.maxTTL else {
            return .failure(Refusal(depth: 3, reason: .ttlTooLong, description: "ttl \(ttl) is over template \(name)'s max_ttl \(template.maxTTL)"))
        }
        guard template.binds.contains(request.bind) else {
            return .failure(Refusal(depth: 4, reason: .bindNotAllowed, description: "template \(name) does not allow bind \(request.bind.rawValue)"))
        }
        var subject = identity
        if let asked = request.subject, asked != identity {
            guard template.delegateSubjects.contains(where: { $0.matches(asked) }) else {
                return .failure(Refusal(depth: 5, reason: .subjectNotAllowed, description: "template \(name) does not let \(identity) ask for another sub"))
            }
            subject = asked
        }
        return .success(Allowance(template: template, ttl: ttl, subject: subject))
    }
}

/// The issuer cannot start: a configuration or key problem, with what to fix.
public struct IssuerSetupError: Error, Sendable, CustomStringConvertible {
    public let description: String

    /// Creates an error with its message.
    public init(_ description: String) {
        self.description = description
    }
}
