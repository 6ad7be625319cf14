public import AsyncHTTPClient
public import EKeyConfig
public import EKeyProtocol
public import EKeyServer
import Foundation
public import Logging

/// The external OIDC identity providers of `issuer.idps` (docs/spec/issuer.md, token exchange):
/// a subject token is accepted when its `iss` names a configured IdP, its signature
/// verifies with that IdP's JWKS (a `jwks_file`, or a `jwks_uri` cached and refreshed on
/// an unknown `kid`), its `aud` contains the IdP's `audience`, and `exp`/`nbf` hold within
/// the clock skew.
///
/// Subject tokens may be signed with RS256 (what most IdPs use), ES256 or EdDSA.
public struct IdentityProviders: Sendable {
    enum Keys: Sendable {
        case file(JWKSet)
        case fetched(JWKSCache)
    }

    struct Provider: Sendable {
        let config: IdPConfig
        let keys: Keys
    }

    private let providers: [String: Provider]
    /// The caches of `jwks_uri` providers, to run as services.
    public let caches: [JWKSCache]

    /// Reads every `jwks_file` now (a bad file stops the start) and prepares a cache for each `jwks_uri`.
    public init(_ configs: [IdPConfig], httpClient: HTTPClient = .shared, logger: Logger) throws(IssuerSetupError) {
        var providers: [String: Provider] = [:]
        var caches: [JWKSCache] = []
        for config in configs {
            let keys: Keys
            switch config.keys {
            case .file(let path):
                do {
                    let data = try Data(contentsOf: URL(fileURLWithPath: path))
                    keys = .file(try JWKSet(parsing: Array(data), acceptingRSA: true))
                } catch {
                    throw IssuerSetupError("issuer.idps[\(config.name)].jwks_file: cannot read a JWKS from \(path) (\(error)); check the path and that it holds {\"keys\": [...]}")
                }
            case .uri(let url):
                var policy = JWKSCache.Policy()
                policy.acceptRSAKeys = true
                let cache = JWKSCache(url: url.absoluteString, client: httpClient, policy: policy, logger: logger)
                caches.append(cache)
                keys = .fetched(cache)
            }
            guard providers[config.issuer] == nil else {
                throw IssuerSetupError("issuer.idps: two entries name the issuer \(config.issuer); keep one")
            }
            providers[config.issuer] = Provider(config: config, keys: keys)
        }
        self.providers = providers
        self.caches = caches
    }

    /// Verifies `subjectToken` and returns the identity `oidc:<idp name>:<subject claim>`.
    ///
    /// - Throws: 401 `invalid_client` for an unknown issuer or any failed check.
    public func identity(of subjectToken: String, now: Int64, clockSkew: Int64) async throws(EKeyError) -> String {
        let token = try SubjectToken(parsing: subjectToken)
        let claims = try StrictJSONParser().parseObject(token.payload) { _ in Self.refused("its payload is not a JSON object") }
        guard let issuer = claims["iss"]?.stringValue, let provider = providers[issuer] else {
            throw Self.refused("its iss is not one of issuer.idps")
        }
        let config = provider.config
        let key: JWK?
        switch provider.keys {
        case .file(let set):
            key = token.keyID.map { set[keyID: $0] } ?? (set.keys.count == 1 ? set.keys.first : nil)
        case .fetched(let cache):
            if let keyID = token.keyID {
                key = await cache.key(forKeyID: keyID)
            } else {
                let keys = await cache.currentKeys.keys
                key = keys.count == 1 ? keys.first : nil
            }
        }
        guard let key else {
            throw Self.refused("no key of IdP \(config.name) matches its kid")
        }
        try token.verify(with: key)
        let audiences: [String]
        if let single = claims["aud"]?.stringValue {
            audiences = [single]
        } else {
            audiences = claims["aud"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        guard audiences.contains(config.audience) else {
            throw Self.refused("its aud does not contain \(config.audience)")
        }
        guard let expiresAt = claims["exp"]?.integerValue else {
            throw Self.refused("it has no integer exp")
        }
        guard now <= expiresAt + clockSkew else {
            throw Self.refused("it expired \(now - expiresAt) s ago")
        }
        if let notBefore = claims["nbf"] {
            guard let value = notBefore.integerValue, value <= now + clockSkew else {
                throw Self.refused("it is not valid yet (nbf)")
            }
        }
        guard let subject = claims[config.subjectClaim]?.stringValue, !subject.isEmpty else {
            throw Self.refused("its \(config.subjectClaim) claim is missing or not a string")
        }
        return "oidc:\(config.name):\(subject)"
    }

    private static func refused(_ reason: String) -> EKeyError {
        EKeyError(.invalidClient, "the subject_token is refused: \(reason)")
    }
}
