import Foundation

/// Typed reading of each section from the shape-checked tree, with the validations of
/// docs/spec/issuer.md, docs/configuration.md. Every problem is recorded in the context; a section with errors reads as `nil`.
enum SectionReader {
    static func stack(_ root: MapReader) -> StackConfig {
        StackConfig(
            store: store(root.map("store")),
            issuer: root.has("issuer") ? issuer(root.map("issuer")) : nil,
            gateway: root.has("gateway") ? gateway(root.map("gateway")) : nil,
            jwks: root.has("jwks") ? jwks(root.map("jwks")) : nil,
            tracing: TracingConfig(endpoint: root.map("tracing").url("endpoint", schemes: ["http", "https"]))
        )
    }

    // MARK: store

    static func store(_ m: MapReader) -> StoreConfig {
        var config = StoreConfig()
        if let prefix = m.string("prefix", nonEmpty: false) { config.prefix = prefix }
        if let (text, node) = m.scalar("url") {
            let url = text.trimmingWhitespace()
            let scheme = url.range(of: "://").map { String(url[..<$0.lowerBound]).lowercased() }
            if let scheme, let kind = StoreConfig.Kind(rawValue: scheme) {
                config.url = url
                config.kind = kind
                config.isExplicit = true
            } else {
                let shown = scheme.map { "scheme \"\($0)\"" } ?? "no scheme"
                m.context.error(
                    m.childPath("url"),
                    "the URL has \(shown); use memory://, redis://host:port, rediss://host:port, redis-cluster://h1:p1,h2:p2 or rediss-cluster://h1:p1,h2:p2",
                    node)
            }
        }
        return config
    }

    // MARK: shared blocks

    /// `tls`: required for a service; `none` or a map with cert and key.
    static func tls(_ parent: MapReader) -> TLSSettings? {
        guard let value = parent.raw("tls") else {
            parent.missing(
                "tls", "give {cert: FILE, key: FILE} (plus client_ca and client_auth for client certificates), or none for plaintext local debugging")
            return nil
        }
        if case .scalar = value { return TLSSettings.none }  // the shape check allowed only `none`
        guard case .map = value else { return nil }
        let m = parent.map("tls")
        let cert = m.has("cert") ? m.file("cert") : nil
        let key = m.has("key") ? m.file("key") : nil
        if !m.has("cert") { m.missing("cert", "the PEM certificate chain of this listener") }
        if !m.has("key") { m.missing("key", "the PEM private key of this listener") }
        let clientCA = m.has("client_ca") ? m.file("client_ca") : nil
        let explicitAuth = m.oneOf("client_auth", ClientAuthMode.self)
        let clientAuth = explicitAuth ?? (m.has("client_ca") ? .optional : .none)
        if clientAuth != .none && !m.has("client_ca") {
            m.context.error(
                m.childPath("client_auth"),
                "client_auth: \(clientAuth.rawValue) needs client_ca (the CA bundle client certificates must chain to); add client_ca or set client_auth: none",
                m.raw("client_auth"))
        }
        var minVersion = TLSMinimumVersion.tls13
        if let (text, node) = m.scalar("min_version") {
            switch text.lowercased().replacingOccurrences(of: "tlsv", with: "") {
            case "1.3": minVersion = .tls13
            case "1.2": minVersion = .tls12
            default: m.context.error(m.childPath("min_version"), "\"\(text)\" is not a TLS version (use \"1.3\" or \"1.2\")", node)
            }
        }
        guard let cert, let key else { return nil }
        return .enabled(TLSFiles(cert: cert, key: key, clientCA: clientCA, clientAuth: clientAuth, minVersion: minVersion))
    }

    static func timeouts(_ m: MapReader, base: TimeoutsConfig) -> TimeoutsConfig {
        TimeoutsConfig(
            connect: m.duration("connect", default: base.connect),
            firstByte: m.duration("first_byte", default: base.firstByte),
            idle: m.duration("idle", default: base.idle)
        )
    }

    static func globs(_ m: MapReader, _ key: String) -> [String] {
        m.stringList(key) ?? []
    }

    // MARK: issuer

    static func issuer(_ m: MapReader) -> IssuerConfig? {
        let errorsBefore = m.context.errors.count
        let listen = m.listen("listen", default: ListenAddress(host: "0.0.0.0", port: 8443))
        let adminListen = m.listen("admin_listen", default: ListenAddress(host: "127.0.0.1", port: 9101))
        if !m.has("issuer_url") { m.missing("issuer_url", "the https:// URL tokens carry in iss, e.g. https://issuer.example.com") }
        let issuerURL = m.url("issuer_url", schemes: ["https", "http"])
        if let issuerURL, issuerURL.absoluteString.hasSuffix("/") {
            m.context.error(
                m.childPath("issuer_url"),
                "\"\(issuerURL.absoluteString)\" ends with /; remove it (the token endpoint is issuer_url + /token)",
                m.raw("issuer_url"))
        }
        let clockSkew = m.duration("clock_skew", default: .seconds(5), positive: false)
        let tls = tls(m)
        let signing = signing(m.map("signing"))
        let publisher = publisher(m)
        var jwksURI = m.url("jwks_uri", schemes: ["https", "http"])
        if jwksURI == nil, !m.has("jwks_uri"), let publisher {
            jwksURI = publisher.url.appendingPathComponent(".well-known").appendingPathComponent("jwks.json")
        }
        let clients = clients(m)
        let idps = idps(m)
        let templates = templates(m)
        if !m.has("templates") || m.isEmptyList("templates") {
            m.context.warnings.append("issuer.templates is empty: the issuer will deny every token request")
        }
        guard m.context.errors.count == errorsBefore, let issuerURL, let jwksURI, let tls, let publisher else {
            return nil
        }
        return IssuerConfig(
            listen: listen, adminListen: adminListen, issuerURL: issuerURL, jwksURI: jwksURI, clockSkew: clockSkew,
            tls: tls, signing: signing, publisher: publisher, clients: clients, idps: idps, templates: templates)
    }

    static func signing(_ m: MapReader) -> SigningConfig {
        let alg = m.oneOf("alg", KeyAlgorithm.self)
        return SigningConfig(
            alg: alg ?? .es256,
            isAlgorithmExplicit: alg != nil,
            rotateEvery: m.duration("rotate_every", default: .seconds(86_400)),
            keyFile: m.has("key_file") ? m.file("key_file") : nil
        )
    }

    static func publisher(_ parent: MapReader) -> PublisherClientConfig? {
        guard parent.has("publisher") else {
            parent.missing(
                "publisher",
                "the JWKS publisher the issuer registers its keys with: {url: https://host:7443, ca: FILE, cert: FILE, key: FILE}")
            return nil
        }
        let m = parent.map("publisher")
        for (key, hint) in [
            ("url", "the publisher's https:// base URL"), ("ca", "the CA bundle of the publisher's certificate"),
            ("cert", "the issuer's client certificate"), ("key", "the issuer's client key"),
        ] where !m.has(key) {
            m.missing(key, hint + " (key registration is HTTP/2 over mutual TLS)")
        }
        guard let url = m.url("url", schemes: ["https"]), let ca = m.file("ca"), let cert = m.file("cert"),
            let key = m.file("key")
        else { return nil }
        return PublisherClientConfig(url: url, ca: ca, cert: cert, key: key)
    }

    static func clients(_ m: MapReader) -> [ClientConfig] {
        var seen: [String: String] = [:]
        var seenKeys: [String: String] = [:]
        var result: [ClientConfig] = []
        for item in m.list("clients") {
            item.missing("id", "the client's name; its identity is client:<id>")
            item.missing("jkt", "the RFC 7638 SHA-256 thumbprint of the client's public key (43 base64url characters)")
            guard let id = item.string("id"), let (jkt, node) = item.scalar("jkt") else { continue }
            let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            guard jkt.count == 43, jkt.allSatisfy({ alphabet.contains($0) }) else {
                item.context.error(
                    item.childPath("jkt"),
                    "\"\(jkt)\" is not a SHA-256 JWK thumbprint (43 base64url characters; `ekey keygen` prints it)", node)
                continue
            }
            if let other = seen[id] {
                item.context.error(item.childPath("id"), "\"\(id)\" is already used by \(other); client ids must be unique", item.raw("id"))
            }
            if let other = seenKeys[jkt] {
                item.context.error(item.childPath("jkt"), "the same key is already registered at \(other); one key, one client", node)
            }
            seen[id] = item.path
            seenKeys[jkt] = item.path
            result.append(ClientConfig(id: id, jkt: jkt))
        }
        return result
    }

    static func idps(_ m: MapReader) -> [IdPConfig] {
        var result: [IdPConfig] = []
        var names: [String: String] = [:]
        for item in m.list("idps") {
            item.missing("name", "a short name; identities become oidc:<name>:<subject>")
            item.missing("issuer", "the IdP's iss value")
            item.missing("audience", "the aud its tokens must carry for this issuer")
            let name = item.string("name")
            let issuer = item.string("issuer")
            let audience = item.string("audience")
            let subjectClaim = item.string("subject_claim") ?? "sub"
            var keys: IdPConfig.KeySource?
            switch (item.has("jwks_uri"), item.has("jwks_file")) {
            case (true, true):
                item.context.error(item.path, "give jwks_uri or jwks_file, not both", item.origin())
            case (false, false):
                item.context.error(item.path, "needs jwks_uri (https://...) or jwks_file (a JWKS JSON file)", item.origin())
            case (true, false):
                keys = item.url("jwks_uri", schemes: ["https", "http"]).map { .uri($0) }
            case (false, true):
                keys = item.file("jwks_file").map { .file($0) }
            }
            if let name {
                if let other = names[name] {
                    item.context.error(item.childPath("name"), "\"\(name)\" is already used by \(other); IdP names must be unique", item.raw("name"))
                }
                names[name] = item.path
            }
            guard let name, let issuer, let audience, let keys else { continue }
            result.append(IdPConfig(name: name, issuer: issuer, audience: audience, keys: keys, subjectClaim: subjectClaim))
        }
        return result
    }

    static func templates(_ m: MapReader) -> [TemplateConfig] {
        var result: [TemplateConfig] = []
        var names: [String: String] = [:]
        for item in m.list("templates") {
            let before = item.context.errors.count
            item.missing("name", "a name for metrics and logs")
            for (key, hint) in [
                ("subjects", "identity globs, e.g. [\"spiffe://example.org/checkout\", \"client:ci-bot\"]"),
                ("audiences", "the audiences tokens may carry, e.g. [\"https://api.example.com\"]"),
                ("actions", "capability actions, e.g. [\"POST:/payments\", \"GET:/payments/:id\"]"),
                ("binds", "[DPoP], [mTLS] or [DPoP, mTLS]"),
            ] {
                item.missing(key, hint)
                if item.isEmptyList(key) {
                    item.context.error(item.childPath(key), "must not be empty: \(hint)", item.raw(key))
                }
            }
            let name = item.string("name")
            let subjects = item.stringList("subjects") ?? []
            let audiences = item.stringList("audiences") ?? []
            let actions = item.stringList("actions") ?? []
            for (index, action) in actions.enumerated() where !isAction(action) {
                item.context.error(
                    "\(item.childPath("actions")).\(index)",
                    "\"\(action)\" is not a capability action (use METHOD:/path, e.g. POST:/payments or GET:/payments/:id)",
                    item.raw("actions"))
            }
            let maxLimit = item.int("max_limit", range: 1...1_000_000_000, rangeHint: "max_limit must be from 1 to 1000000000") ?? 1
            let maxTTL = maxTTLSeconds(item)
            var binds = Set<Binding>()
            for (index, text) in (item.stringList("binds") ?? []).enumerated() {
                if let bind = Binding.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) {
                    binds.insert(bind)
                } else {
                    item.context.error("\(item.childPath("binds")).\(index)", "\"\(text)\" is not a binding (use DPoP or mTLS)", item.raw("binds"))
                }
            }
            let rate = item.int("rate_per_minute", range: 1...Int(Int32.max), rangeHint: "rate_per_minute must be at least 1 (leave it out for no limit)")
            let delegates = item.stringList("delegate_subjects") ?? []
            if let name {
                if let other = names[name] {
                    item.context.error(item.childPath("name"), "\"\(name)\" is already used by \(other); template names must be unique", item.raw("name"))
                }
                names[name] = item.path
            }
            guard item.context.errors.count == before, let name else { continue }
            result.append(TemplateConfig(
                name: name, subjects: subjects, audiences: audiences, actions: actions, maxLimit: maxLimit,
                maxTTL: maxTTL, binds: binds, ratePerMinute: rate, delegateSubjects: delegates))
        }
        return result
    }

    /// `max_ttl`: whole seconds 1–60, written as a number (`30`) or a duration (`30s`).
    static func maxTTLSeconds(_ item: MapReader) -> Int {
        guard let (text, node) = item.scalar("max_ttl") else { return 60 }
        guard let duration = Duration(configText: text), duration.components.attoseconds == 0 else {
            item.context.error(item.childPath("max_ttl"), "\"\(text)\" is not a whole number of seconds (e.g. 30)", node)
            return 60
        }
        let seconds = duration.components.seconds
        guard (1...60).contains(seconds) else {
            item.context.error(
                item.childPath("max_ttl"), "\(seconds) is out of range: tokens live at most 60 seconds, use 1 to 60", node)
            return 60
        }
        return Int(seconds)
    }

    /// `METHOD:/path`: an upper-case method, then a path starting with `/`.
    static func isAction(_ text: String) -> Bool {
        guard let colon = text.firstIndex(of: ":") else { return false }
        let method = text[..<colon]
        let path = text[text.index(after: colon)...]
        return !method.isEmpty && method.allSatisfy({ $0.isASCII && ($0.isUppercase || $0 == "-") })
            && path.hasPrefix("/") && !path.contains(where: \.isWhitespace)
    }

    // MARK: gateway

    static func gateway(_ m: MapReader) -> GatewayConfig? {
        let before = m.context.errors.count
        let listen = m.listen("listen", default: ListenAddress(host: "0.0.0.0", port: 9443))
        let adminListen = m.listen("admin_listen", default: ListenAddress(host: "127.0.0.1", port: 9102))
        let tls = tls(m)
        m.missing("issuer", "the iss tokens must carry, e.g. https://issuer.example.com")
        let issuer = m.url("issuer", schemes: ["https", "http"]) == nil ? nil : m.string("issuer")?.trimmingWhitespace()
        let jwks = jwksClient(m)
        let clockSkew = m.duration("clock_skew", default: .seconds(5), positive: false)
        let dpop = dpop(m.map("dpop"))
        let timeouts = timeouts(m.map("timeouts"), base: TimeoutsConfig())
        let routes = routes(m, timeouts: timeouts)
        guard m.context.errors.count == before, let tls, let issuer, let jwks else { return nil }
        return GatewayConfig(
            listen: listen, adminListen: adminListen, tls: tls, issuer: issuer, jwks: jwks, clockSkew: clockSkew,
            dpop: dpop, timeouts: timeouts, routes: routes)
    }

    static func jwksClient(_ parent: MapReader) -> JWKSClientConfig? {
        guard parent.has("jwks") else {
            parent.missing("jwks", "where the gateway fetches keys: {url: https://host:7443/.well-known/jwks.json, ca: FILE}")
            return nil
        }
        let m = parent.map("jwks")
        m.missing("url", "the publisher's key set URL, e.g. https://127.0.0.1:7443/.well-known/jwks.json")
        let url = m.url("url", schemes: ["https", "http"])
        let ca = m.has("ca") ? m.file("ca") : nil
        let cert = m.has("cert") ? m.file("cert") : nil
        let key = m.has("key") ? m.file("key") : nil
        if m.has("cert") != m.has("key") {
            m.context.error(m.path, "cert and key go together (the client certificate and its key); give both or neither", m.origin())
        }
        guard let url else { return nil }
        return JWKSClientConfig(url: url, ca: ca, cert: cert, key: key)
    }

    static func dpop(_ m: MapReader) -> DPoPConfig {
        let config = DPoPConfig(
            maxAge: m.duration("max_age", default: .seconds(5)),
            requireATH: m.bool("require_ath", default: false),
            nonce: m.bool("nonce", default: false),
            nonceWindow: m.duration("nonce_window", default: .seconds(60)),
            nonceSecretFile: m.has("nonce_secret_file") ? m.file("nonce_secret_file") : nil
        )
        if config.nonce && !m.has("nonce_secret_file") {
            m.context.error(
                m.childPath("nonce"),
                "nonce: true needs nonce_secret_file (a file of at least 32 random bytes shared by every gateway replica, e.g. `head -c 32 /dev/urandom > pki/dpop-nonce.key`)",
                m.raw("nonce"))
        }
        return config
    }

    static func routes(_ m: MapReader, timeouts: TimeoutsConfig) -> [RouteConfig] {
        guard m.has("routes") else {
            m.missing("routes", "at least one {prefix: /, upstream: http://host:port, audience: ..., public_origin: https://...}")
            return []
        }
        let items = m.list("routes")
        if m.isEmptyList("routes") {
            m.context.error(m.childPath("routes"), "must list at least one route", m.raw("routes"))
        }
        var result: [RouteConfig] = []
        var prefixes: [String: String] = [:]
        for item in items {
            item.missing("prefix", "the path prefix this route serves, e.g. / or /payments")
            item.missing("upstream", "the legacy API's URL, e.g. http://127.0.0.1:8080")
            item.missing("audience", "the aud tokens must carry for this route")
            item.missing("public_origin", "the scheme://host[:port] clients call, used to check DPoP htu")
            var prefix = item.string("prefix")
            if let text = prefix {
                if !text.hasPrefix("/") {
                    item.context.error(item.childPath("prefix"), "\"\(text)\" must start with /", item.raw("prefix"))
                    prefix = nil
                } else if let other = prefixes[text] {
                    item.context.error(item.childPath("prefix"), "\"\(text)\" is already routed by \(other); prefixes must be unique", item.raw("prefix"))
                } else {
                    prefixes[text] = item.path
                }
            }
            let upstream = item.url("upstream", schemes: ["http", "https", "h2c"])
            let audience = item.string("audience")
            let origin = item.url("public_origin", schemes: ["https", "http"], pathAllowed: false)
            let upstreamCA = item.has("upstream_ca") ? item.file("upstream_ca") : nil
            if upstreamCA != nil, let upstream, upstream.scheme?.lowercased() != "https" {
                item.context.warnings.append("\(item.childPath("upstream_ca")) is ignored: the upstream is not https://")
            }
            let routeTimeouts = Self.timeouts(item.map("timeouts"), base: timeouts)
            guard let prefix, let upstream, let audience, let origin else { continue }
            result.append(RouteConfig(
                prefix: prefix, upstream: upstream, audience: audience, publicOrigin: origin, upstreamCA: upstreamCA,
                timeouts: routeTimeouts))
        }
        return result
    }

    // MARK: jwks

    static func jwks(_ m: MapReader) -> JWKSConfig? {
        let before = m.context.errors.count
        let listen = m.listen("listen", default: ListenAddress(host: "0.0.0.0", port: 7443))
        let adminListen = m.listen("admin_listen", default: ListenAddress(host: "127.0.0.1", port: 9103))
        let tls = tls(m)
        let issuers = globs(m, "authorized_issuers")
        let admins = globs(m, "admins")
        if issuers.isEmpty {
            m.context.warnings.append("jwks.authorized_issuers is empty: no issuer can register a signing key")
        }
        let config = JWKSConfig(
            listen: listen, adminListen: adminListen, tls: tls ?? TLSSettings.none, authorizedIssuers: issuers, admins: admins,
            cacheMaxAge: m.duration("cache_max_age", default: .seconds(30), positive: false),
            retain: m.duration("retain", default: .seconds(86_400), positive: false))
        guard m.context.errors.count == before, tls != nil else { return nil }
        return config
    }
}
