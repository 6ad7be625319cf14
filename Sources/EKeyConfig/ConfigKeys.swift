import Foundation

/// Every key of the stack file, declared once: name, type, default and one doc line.
///
/// From these declarations come the schema check (``ConfigSchema``), the typed reading
/// (``SectionReader``), the `EKEY_*` names (``EnvironmentOverrides``), the defaults of the
/// public `*Config` types and the key tables of docs/configuration.md (``ConfigReference``;
/// `make config-docs` rewrites them, a test checks them). The blocks list their keys in
/// documentation order, which is also the order of "valid: ..." in unknown-key errors.
@usableFromInline
enum ConfigKeys {
    static let root = ConfigBlock("", .map, [
        .block(Store.block), .block(Issuer.block), .block(Gateway.block), .block(JWKS.block), .block(Tracing.block),
    ])

    @usableFromInline
    enum Store {
        @usableFromInline static let url = ConfigKey(
            "url", .storeURL, default: StoreURL(url: "memory://", kind: .memory),
            doc: "where usage counters and replay caches live; it may hold a password and is never echoed")
        @usableFromInline static let prefix = ConfigKey("prefix", .anyString, default: "ekey:", doc: "prefix of every store key")
        static let block = ConfigBlock("store", .map, [.key(url), .key(prefix)])
    }

    enum Tracing {
        static let endpoint = ConfigKey(
            "endpoint", ValueType.url(["http", "https"]).optional, default: nil, shownDefault: "none: tracing off",
            doc: "an OTLP/HTTP collector's base URL (spans go to `/v1/traces`), or a full traces URL")
        static let block = ConfigBlock("tracing", .map, [.key(endpoint)])
    }

    /// A service's `tls`: `none`, or a map of these keys.
    @usableFromInline
    enum TLS {
        static let cert = RequiredKey("cert", .file.described("file: PEM chain, leaf first"), doc: "the PEM certificate chain of this listener")
        static let key = RequiredKey(
            "key", .file.described("file: PEM key, SEC1 or PKCS#8, P-256 or Ed25519"), doc: "the PEM private key of this listener")
        static let clientCA = ConfigKey(
            "client_ca", ValueType.file.optional, default: nil, doc: "the PEM CA bundle client certificates must chain to")
        static let clientAuth = ConfigKey(
            "client_auth", ValueType<ClientAuthMode>.oneOf.optional, default: nil,
            shownDefault: "`optional` with `client_ca`, else `none`",
            doc: "whether a client certificate is asked for; `optional` and `required` need `client_ca`")
        @usableFromInline static let minVersion = ConfigKey(
            "min_version", .tlsVersion, default: .tls13,
            doc: "the lowest TLS version accepted; quote it, YAML reads 1.2 as a number")
        static let block = ConfigBlock(
            "tls", .noneOrMap, [.key(cert), .key(key), .key(clientCA), .key(clientAuth), .key(minVersion)],
            summary: .init(
                type: "`none` or a map, see [tls](#tls)", default: "required", doc: "the listener's TLS (`none`: plaintext, local debugging only)"))
    }

    /// A service's `connections`: limits on the downstream connections of its main listener.
    @usableFromInline
    enum Connections {
        @usableFromInline static let handshake = ConfigKey(
            "handshake", .positiveDuration, default: .seconds(10), doc: "to finish the TLS handshake and protocol negotiation")
        @usableFromInline static let idle = ConfigKey(
            "idle", .positiveDuration, default: .seconds(60),
            doc: "with no request in flight before a connection is closed, and the longest wait for a request's body")
        static let block = ConfigBlock("connections", .map, [.key(handshake), .key(idle)])
    }

    /// Limits on upstream calls: the gateway's, and a route's own.
    @usableFromInline
    enum Timeouts {
        @usableFromInline static let connect = ConfigKey(
            "connect", .positiveDuration, default: .seconds(2), doc: "to open the upstream connection")
        @usableFromInline static let firstByte = ConfigKey(
            "first_byte", .positiveDuration, default: .seconds(30), doc: "from request sent to response head")
        @usableFromInline static let idle = ConfigKey(
            "idle", .positiveDuration, default: .seconds(60), doc: "the longest pause while streaming either body")
        static let block = ConfigBlock("timeouts", .map, [.key(connect), .key(firstByte), .key(idle)])
    }

    @usableFromInline
    enum Issuer {
        @usableFromInline static let listen = ConfigKey(
            "listen", .address, default: ListenAddress(host: "0.0.0.0", port: 8443), doc: "the token endpoint's listener")
        @usableFromInline static let adminListen = ConfigKey(
            "admin_listen", .address, default: ListenAddress(host: "127.0.0.1", port: 9101),
            doc: "metrics and health, plain HTTP")
        static let issuerURL = RequiredKey(
            "issuer_url", ValueType.url(["https", "http"]).described("URL (https, http), no trailing `/`"),
            doc: "the https:// URL tokens carry in iss, e.g. https://issuer.example.com")
        static let jwksURI = ConfigKey(
            "jwks_uri", ValueType.url(["https", "http"]).optional, default: nil,
            shownDefault: "`publisher.url` + `/.well-known/jwks.json`", doc: "the key set URL of the RFC 8414 metadata")
        @usableFromInline static let clockSkew = ConfigKey(
            "clock_skew", .duration, default: .seconds(5), doc: "allowed on DPoP proofs' and IdP tokens' times")

        @usableFromInline
        enum Signing {
            @usableFromInline static let alg = ConfigKey(
                "alg", ValueType<KeyAlgorithm>.oneOf, default: .es256,
                doc: "the token signing algorithm; with `key_file` the key's type decides")
            @usableFromInline static let rotateEvery = ConfigKey(
                "rotate_every", .positiveDuration, default: .seconds(86_400), doc: "how often a generated key is replaced")
            @usableFromInline static let keyFile = ConfigKey(
                "key_file", ValueType.file.optional, default: nil, shownDefault: "none (keys generated in memory)",
                doc: "a shared PEM key (SEC1 or PKCS#8; P-256 or Ed25519) instead of generated ones")
            static let block = ConfigBlock("signing", .map, [.key(alg), .key(rotateEvery), .key(keyFile)])
        }

        /// `publisher`: key registration, HTTP/2 over mutual TLS.
        enum Publisher {
            static let url = RequiredKey(
                "url", ValueType.url(["https"]).described("URL (https only: registration is mutual TLS)"),
                doc: "the publisher's https:// base URL")
            static let ca = RequiredKey("ca", .file, doc: "the CA bundle of the publisher's certificate")
            static let cert = RequiredKey("cert", .file, doc: "the issuer's client certificate")
            static let key = RequiredKey("key", .file, doc: "the issuer's client key")
            static let block = ConfigBlock("publisher", .map, [.key(url), .key(ca), .key(cert), .key(key)])
        }

        /// `clients[]`: DPoP keys registered to client identities.
        enum Client {
            static let id = RequiredKey("id", .string, doc: "the client's name; its identity is client:<id>")
            static let jkt = RequiredKey(
                "jkt", ValueType.string.described("RFC 7638 SHA-256 thumbprint, 43 base64url characters"),
                doc: "the RFC 7638 SHA-256 thumbprint of the client's public key (43 base64url characters)")
            static let block = ConfigBlock("clients", .list, [.key(id), .key(jkt)])
        }

        /// `idps[]`: OIDC identity providers accepted for token exchange.
        @usableFromInline
        enum IdP {
            static let name = RequiredKey("name", .string, doc: "a short name; identities become oidc:<name>:<subject>")
            static let issuer = RequiredKey("issuer", .string, doc: "the IdP's iss value")
            static let audience = RequiredKey("audience", .string, doc: "the aud its tokens must carry for this issuer")
            static let jwksURI = ConfigKey(
                "jwks_uri", ValueType.url(["https", "http"]).optional, default: nil, shownDefault: "one of the two",
                doc: "where the IdP's keys are fetched")
            static let jwksFile = ConfigKey(
                "jwks_file", ValueType.file.optional, default: nil, shownDefault: "one of the two", doc: "a JWKS JSON file of the IdP's keys")
            @usableFromInline static let subjectClaim = ConfigKey(
                "subject_claim", .string, default: "sub", doc: "the claim that names the subject")
            static let block = ConfigBlock(
                "idps", .list, [.key(name), .key(issuer), .key(audience), .key(jwksURI), .key(jwksFile), .key(subjectClaim)])
        }

        /// `templates[]`: the issuance policy; nothing matches → denied.
        @usableFromInline
        enum Template {
            static let name = RequiredKey("name", ValueType.string.described("string, unique"), doc: "a name for metrics and logs")
            static let subjects = RequiredKey(
                "subjects", ValueType.strings.described("non-empty list of globs"),
                doc: "identity globs, e.g. [\"spiffe://example.org/checkout\", \"client:ci-bot\"]")
            static let audiences = RequiredKey(
                "audiences", ValueType.strings.described("non-empty list of strings"),
                doc: "the audiences tokens may carry, e.g. [\"https://api.example.com\"]")
            static let actions = RequiredKey(
                "actions", ValueType.strings.described("non-empty list of `METHOD:/path`"),
                doc: "capability actions, e.g. [\"POST:/payments\", \"GET:/payments/:id\"]")
            @usableFromInline static let maxLimit = ConfigKey(
                "max_limit", .integer(1...1_000_000_000, text: "integer 1–1000000000", rangeHint: "max_limit must be from 1 to 1000000000"),
                default: 1, doc: "the highest use count a token may carry")
            @usableFromInline static let maxTTL = ConfigKey(
                "max_ttl", .tokenLifetime, default: .seconds(60), doc: "the longest token lifetime")
            static let binds = RequiredKey(
                "binds", ValueType.strings.described("non-empty list of `DPoP`, `mTLS` (any case)"),
                doc: "[DPoP], [mTLS] or [DPoP, mTLS]")
            @usableFromInline static let ratePerMinute = ConfigKey(
                "rate_per_minute",
                ValueType.integer(
                    1...Int(Int32.max), text: "integer ≥ 1", rangeHint: "rate_per_minute must be at least 1 (leave it out for no limit)"
                ).optional,
                default: nil, shownDefault: "no limit", doc: "issuance limit per identity and template")
            @usableFromInline static let delegateSubjects = ConfigKey(
                "delegate_subjects", ValueType.strings.described("list of globs"), default: [],
                doc: "subjects a caller may ask for instead of its own identity")
            static let block = ConfigBlock("templates", .list, [
                .key(name), .key(subjects), .key(audiences), .key(actions), .key(maxLimit), .key(maxTTL), .key(binds),
                .key(ratePerMinute), .key(delegateSubjects),
            ])
        }

        static let block = ConfigBlock("issuer", .map, [
            .key(listen), .key(adminListen), .key(issuerURL), .key(jwksURI), .key(clockSkew), .block(TLS.block),
            .block(Connections.block), .block(Signing.block), .block(Publisher.block), .block(Client.block), .block(IdP.block), .block(Template.block),
        ])
    }

    @usableFromInline
    enum Gateway {
        @usableFromInline static let listen = ConfigKey(
            "listen", .address, default: ListenAddress(host: "0.0.0.0", port: 9443), doc: "the verifying proxy's listener")
        @usableFromInline static let adminListen = ConfigKey(
            "admin_listen", .address, default: ListenAddress(host: "127.0.0.1", port: 9102),
            doc: "metrics and health, plain HTTP")
        static let issuer = RequiredKey(
            "issuer", ValueType.url(["https", "http"]), doc: "the iss tokens must carry, e.g. https://issuer.example.com")
        @usableFromInline static let clockSkew = ConfigKey(
            "clock_skew", .duration, default: .seconds(5), doc: "allowed on token `exp` and `iat`")

        /// `jwks`: where the gateway fetches the issuers' keys.
        enum JWKS {
            static let url = RequiredKey(
                "url", ValueType.url(["https", "http"]),
                doc: "the publisher's key set URL, e.g. https://127.0.0.1:7443/.well-known/jwks.json")
            static let ca = ConfigKey(
                "ca", ValueType.file.optional, default: nil, shownDefault: "system trust",
                doc: "the CA bundle of the publisher's certificate")
            static let cert = ConfigKey(
                "cert", ValueType.file.optional, default: nil, doc: "client certificate for mutual TLS; with `key`")
            static let key = ConfigKey("key", ValueType.file.optional, default: nil, doc: "client key for mutual TLS; with `cert`")
            static let block = ConfigBlock("jwks", .map, [.key(url), .key(ca), .key(cert), .key(key)])
        }

        @usableFromInline
        enum DPoP {
            @usableFromInline static let maxAge = ConfigKey(
                "max_age", .positiveDuration, default: .seconds(5), doc: "how far a proof's `iat` may be from now")
            @usableFromInline static let requireATH = ConfigKey(
                "require_ath", .bool, default: false, doc: "refuse proofs without `ath`, the access token's hash")
            @usableFromInline static let nonce = ConfigKey(
                "nonce", .bool, default: false, doc: "demand a server nonce (RFC 9449 §9); needs `nonce_secret_file`")
            @usableFromInline static let nonceWindow = ConfigKey(
                "nonce_window", .positiveDuration, default: .seconds(60), doc: "the lifetime of one nonce window")
            @usableFromInline static let nonceSecretFile = ConfigKey(
                "nonce_secret_file", ValueType.file.optional, default: nil,
                doc: "the nonces' HMAC secret, at least 32 bytes shared by every replica; required when `nonce: true`")
            static let block = ConfigBlock(
                "dpop", .map, [.key(maxAge), .key(requireATH), .key(nonce), .key(nonceWindow), .key(nonceSecretFile)])
        }

        /// `routes[]`: one upstream behind the gateway; the longest matching prefix wins.
        enum Route {
            static let prefix = RequiredKey(
                "prefix", ValueType.string.described("path starting with `/`, unique"),
                doc: "the path prefix this route serves, e.g. / or /payments")
            static let upstream = RequiredKey(
                "upstream", ValueType.url(["http", "https", "h2c"]), doc: "the legacy API's URL, e.g. http://127.0.0.1:8080")
            static let audience = RequiredKey("audience", .string, doc: "the aud tokens must carry for this route")
            static let publicOrigin = RequiredKey(
                "public_origin", ValueType.url(["https", "http"], pathAllowed: false),
                doc: "the scheme://host[:port] clients call, used to check DPoP htu")
            static let upstreamCA = ConfigKey(
                "upstream_ca", ValueType.file.optional, default: nil, shownDefault: "system trust",
                doc: "the CA bundle of an https:// upstream (ignored for others)")
            static let block = ConfigBlock("routes", .list, [
                .key(prefix), .key(upstream), .key(audience), .key(publicOrigin), .key(upstreamCA),
                .block(Timeouts.block.inheriting("the gateway's, key by key")),
            ])
        }

        /// `authorize`: verify-only mode, the gateway's checks answered to a proxy (docs/authorize.md).
        @usableFromInline
        enum Authorize {
            @usableFromInline static let listen = ConfigKey(
                "listen", .address, default: ListenAddress(host: "127.0.0.1", port: 9444),
                doc: "the authorization listener proxies call; never the public one")
            static let grpcListen = ConfigKey(
                "grpc_listen", ValueType.address.optional, default: nil, shownDefault: "none",
                doc: "Envoy ext_authz gRPC `Check` (`envoy.service.auth.v3.Authorization`), with the same `tls` and `trusted_clients`; absent: off")
            static let trustedClients = RequiredKey(
                "trusted_clients", ValueType.strings.described("non-empty list of identities or CIDRs"),
                doc: "the proxies answered: TLS identities (spiffe://..., x509:<CN>) or address ranges (127.0.0.1/32)")
            static let pathPrefix = ConfigKey(
                "path_prefix", ValueType.string.optional, default: nil, shownDefault: "none",
                doc: "stripped from the request path when no forwarded-request header names the original (Envoy ext_authz HTTP)")
            static let block = ConfigBlock("authorize", .map, [
                .key(listen), .block(TLS.block), .key(grpcListen), .key(trustedClients), .key(pathPrefix),
            ])
        }

        static let block = ConfigBlock("gateway", .map, [
            .key(listen), .key(adminListen), .block(TLS.block), .block(Connections.block), .key(issuer), .block(JWKS.block), .key(clockSkew),
            .block(DPoP.block), .block(Timeouts.block), .block(Route.block), .block(Authorize.block),
        ])
    }

    @usableFromInline
    enum JWKS {
        @usableFromInline static let listen = ConfigKey(
            "listen", .address, default: ListenAddress(host: "0.0.0.0", port: 7443), doc: "the key set's and registration's listener")
        @usableFromInline static let adminListen = ConfigKey(
            "admin_listen", .address, default: ListenAddress(host: "127.0.0.1", port: 9103),
            doc: "metrics and health, plain HTTP")
        @usableFromInline static let authorizedIssuers = ConfigKey(
            "authorized_issuers", ValueType.strings.described("list of identities, compared exactly (no globs)"), default: [],
            shownDefault: "`[]` (warning: no issuer can register)", doc: "the identities allowed to register signing keys")
        @usableFromInline static let admins = ConfigKey(
            "admins", ValueType.strings.described("list of identities, compared exactly (no globs)"), default: [],
            doc: "the identities allowed to revoke, export and import keys")
        @usableFromInline static let cacheMaxAge = ConfigKey(
            "cache_max_age", .duration, default: .seconds(30), doc: "the `max-age` of the key set response")
        @usableFromInline static let retain = ConfigKey(
            "retain", .duration, default: .seconds(86_400),
            doc: "how long a key stays published after its `not_after`, and a revoked kid is refused")
        static let block = ConfigBlock("jwks", .map, [
            .key(listen), .key(adminListen), .block(TLS.block), .block(Connections.block), .key(authorizedIssuers), .key(admins), .key(cacheMaxAge),
            .key(retain),
        ])
    }
}
