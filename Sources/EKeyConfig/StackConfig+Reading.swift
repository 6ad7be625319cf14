import Foundation

/// Typed reading of each section from the shape-checked tree, with the validations of
/// docs/spec/issuer.md, docs/configuration.md. Every problem is recorded in the context; a section with errors reads as `nil`.
enum SectionReader {
    static func stack(_ root: MapReader) -> StackConfig {
        StackConfig(
            store: store(root.map(ConfigKeys.Store.block)),
            issuer: root.has(ConfigKeys.Issuer.block) ? issuer(root.map(ConfigKeys.Issuer.block)) : nil,
            gateway: root.has(ConfigKeys.Gateway.block) ? gateway(root.map(ConfigKeys.Gateway.block)) : nil,
            jwks: root.has(ConfigKeys.JWKS.block) ? jwks(root.map(ConfigKeys.JWKS.block)) : nil,
            tracing: TracingConfig(endpoint: root.map(ConfigKeys.Tracing.block)[ConfigKeys.Tracing.endpoint])
        )
    }

    // MARK: store

    static func store(_ m: MapReader) -> StoreConfig {
        typealias Key = ConfigKeys.Store
        let prefix = m[Key.prefix]
        let explicitURL = m.value(Key.url)
        let url = explicitURL ?? Key.url.defaultValue
        return StoreConfig(url: url.url, kind: url.kind, prefix: prefix, isExplicit: explicitURL != nil)
    }

    // MARK: shared blocks

    /// `tls`: required for a service; `none` or a map with cert and key.
    static func tls(_ parent: MapReader) -> TLSSettings? {
        typealias Key = ConfigKeys.TLS
        guard let value = parent.raw(Key.block) else {
            parent.missing(
                Key.block.name,
                "give {cert: FILE, key: FILE} (plus client_ca and client_auth for client certificates), or none for plaintext local debugging")
            return nil
        }
        if case .scalar = value { return TLSSettings.none }  // the shape check allowed only `none`
        guard case .map = value else { return nil }
        let m = parent.map(Key.block)
        let cert = m.value(Key.cert)
        let key = m.value(Key.key)
        m.missing(Key.cert)
        m.missing(Key.key)
        let clientCA = m[Key.clientCA]
        let clientAuth = m[Key.clientAuth] ?? (m.has(Key.clientCA) ? .optional : .none)
        if clientAuth != .none && !m.has(Key.clientCA) {
            m.context.error(
                m.childPath(Key.clientAuth),
                "client_auth: \(clientAuth.rawValue) needs client_ca (the CA bundle client certificates must chain to); add client_ca or set client_auth: none",
                m.raw(Key.clientAuth))
        }
        let minVersion = m[Key.minVersion]
        guard let cert, let key else { return nil }
        return .enabled(TLSFiles(cert: cert, key: key, clientCA: clientCA, clientAuth: clientAuth, minVersion: minVersion))
    }

    /// A service's `connections` block.
    static func connections(_ parent: MapReader) -> ConnectionsConfig {
        let m = parent.map(ConfigKeys.Connections.block)
        return ConnectionsConfig(handshake: m[ConfigKeys.Connections.handshake], idle: m[ConfigKeys.Connections.idle])
    }

    /// A `timeouts` block; absent keys take `base`'s values.
    static func timeouts(_ m: MapReader, base: TimeoutsConfig) -> TimeoutsConfig {
        typealias Key = ConfigKeys.Timeouts
        return TimeoutsConfig(
            connect: m.value(Key.connect) ?? base.connect,
            firstByte: m.value(Key.firstByte) ?? base.firstByte,
            idle: m.value(Key.idle) ?? base.idle
        )
    }

    // MARK: issuer

    static func issuer(_ m: MapReader) -> IssuerConfig? {
        typealias Key = ConfigKeys.Issuer
        let errorsBefore = m.context.errors.count
        let listen = m[Key.listen]
        let adminListen = m[Key.adminListen]
        m.missing(Key.issuerURL)
        let issuerURL = m.value(Key.issuerURL)
        if let issuerURL, issuerURL.absoluteString.hasSuffix("/") {
            m.context.error(
                m.childPath(Key.issuerURL),
                "\"\(issuerURL.absoluteString)\" ends with /; remove it (the token endpoint is issuer_url + /token)",
                m.raw(Key.issuerURL))
        }
        let clockSkew = m[Key.clockSkew]
        let tls = tls(m)
        let connections = connections(m)
        let signing = signing(m.map(Key.Signing.block))
        let publisher = publisher(m)
        var jwksURI = m[Key.jwksURI]
        if jwksURI == nil, !m.has(Key.jwksURI), let publisher {
            jwksURI = publisher.url.appendingPathComponent(".well-known").appendingPathComponent("jwks.json")
        }
        let clients = clients(m)
        let idps = idps(m)
        let templates = templates(m)
        if !m.has(Key.Template.block) || m.isEmptyList(Key.Template.block) {
            m.context.warnings.append("issuer.templates is empty: the issuer will deny every token request")
        }
        guard m.context.errors.count == errorsBefore, let issuerURL, let jwksURI, let tls, let publisher else {
            return nil
        }
        return IssuerConfig(
            listen: listen, adminListen: adminListen, issuerURL: issuerURL, jwksURI: jwksURI, clockSkew: clockSkew,
            tls: tls, connections: connections, signing: signing, publisher: publisher, clients: clients, idps: idps, templates: templates)
    }

    static func signing(_ m: MapReader) -> SigningConfig {
        typealias Key = ConfigKeys.Issuer.Signing
        let alg = m.value(Key.alg)
        return SigningConfig(
            alg: alg ?? Key.alg.defaultValue,
            isAlgorithmExplicit: alg != nil,
            rotateEvery: m[Key.rotateEvery],
            keyFile: m[Key.keyFile]
        )
    }

    static func publisher(_ parent: MapReader) -> PublisherClientConfig? {
        typealias Key = ConfigKeys.Issuer.Publisher
        guard parent.has(Key.block) else {
            parent.missing(
                Key.block.name,
                "the JWKS publisher the issuer registers its keys with: {url: https://host:7443, ca: FILE, cert: FILE, key: FILE}")
            return nil
        }
        let m = parent.map(Key.block)
        let registration = " (key registration is HTTP/2 over mutual TLS)"
        m.missing(Key.url, adding: registration)
        for key in [Key.ca, Key.cert, Key.key] { m.missing(key, adding: registration) }
        guard let url = m.value(Key.url), let ca = m.value(Key.ca), let cert = m.value(Key.cert), let key = m.value(Key.key)
        else { return nil }
        return PublisherClientConfig(url: url, ca: ca, cert: cert, key: key)
    }

    static func clients(_ m: MapReader) -> [ClientConfig] {
        typealias Key = ConfigKeys.Issuer.Client
        var seen: [String: String] = [:]
        var seenKeys: [String: String] = [:]
        var result: [ClientConfig] = []
        for item in m.list(Key.block) {
            item.missing(Key.id)
            item.missing(Key.jkt)
            guard let id = item.value(Key.id), let (jkt, node) = item.scalar(Key.jkt) else { continue }
            let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            guard jkt.count == 43, jkt.allSatisfy({ alphabet.contains($0) }) else {
                item.context.error(
                    item.childPath(Key.jkt),
                    "\"\(jkt)\" is not a SHA-256 JWK thumbprint (43 base64url characters; `ekey keygen` prints it)", node)
                continue
            }
            if let other = seen[id] {
                item.context.error(item.childPath(Key.id), "\"\(id)\" is already used by \(other); client ids must be unique", item.raw(Key.id))
            }
            if let other = seenKeys[jkt] {
                item.context.error(item.childPath(Key.jkt), "the same key is already registered at \(other); one key, one client", node)
            }
            seen[id] = item.path
            seenKeys[jkt] = item.path
            result.append(ClientConfig(id: id, jkt: jkt))
        }
        return result
    }

    static func idps(_ m: MapReader) -> [IdPConfig] {
        typealias Key = ConfigKeys.Issuer.IdP
        var result: [IdPConfig] = []
        var names: [String: String] = [:]
        for item in m.list(Key.block) {
            item.missing(Key.name)
            item.missing(Key.issuer)
            item.missing(Key.audience)
            let name = item.value(Key.name)
            let issuer = item.value(Key.issuer)
            let audience = item.value(Key.audience)
            let subjectClaim = item[Key.subjectClaim]
            var keys: IdPConfig.KeySource?
            switch (item.has(Key.jwksURI), item.has(Key.jwksFile)) {
            case (true, true):
                item.context.error(item.path, "give jwks_uri or jwks_file, not both", item.origin())
            case (false, false):
                item.context.error(item.path, "needs jwks_uri (https://...) or jwks_file (a JWKS JSON file)", item.origin())
            case (true, false):
                keys = item[Key.jwksURI].map { .uri($0) }
            case (false, true):
                keys = item[Key.jwksFile].map { .file($0) }
            }
            if let name {
                if let other = names[name] {
                    item.context.error(item.childPath(Key.name), "\"\(name)\" is already used by \(other); IdP names must be unique", item.raw(Key.name))
                }
                names[name] = item.path
            }
            guard let name, let issuer, let audience, let keys else { continue }
            result.append(IdPConfig(name: name, issuer: issuer, audience: audience, keys: keys, subjectClaim: subjectClaim))
        }
        return result
    }

    static func templates(_ m: MapReader) -> [TemplateConfig] {
        typealias Key = ConfigKeys.Issuer.Template
        var result: [TemplateConfig] = []
        var names: [String: String] = [:]
        for item in m.list(Key.block) {
            let before = item.context.errors.count
            item.missing(Key.name)
            for key in [Key.subjects, Key.audiences, Key.actions, Key.binds] {
                item.missing(key)
                if item.isEmptyList(key) {
                    item.context.error(item.childPath(key), "must not be empty: \(key.doc)", item.raw(key))
                }
            }
            let name = item.value(Key.name)
            let subjects = item.value(Key.subjects) ?? []
            let audiences = item.value(Key.audiences) ?? []
            let actions = item.value(Key.actions) ?? []
            for (index, action) in actions.enumerated() where !isAction(action) {
                item.context.error(
                    "\(item.childPath(Key.actions)).\(index)",
                    "\"\(action)\" is not a capability action (use METHOD:/path, e.g. POST:/payments or GET:/payments/:id)",
                    item.raw(Key.actions))
            }
            let maxLimit = item[Key.maxLimit]
            let maxTTL = item[Key.maxTTL]
            var binds = Set<Binding>()
            for (index, text) in (item.value(Key.binds) ?? []).enumerated() {
                if let bind = Binding.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) {
                    binds.insert(bind)
                } else {
                    item.context.error("\(item.childPath(Key.binds)).\(index)", "\"\(text)\" is not a binding (use DPoP or mTLS)", item.raw(Key.binds))
                }
            }
            let rate = item[Key.ratePerMinute]
            let delegates = item[Key.delegateSubjects]
            if let name {
                if let other = names[name] {
                    item.context.error(item.childPath(Key.name), "\"\(name)\" is already used by \(other); template names must be unique", item.raw(Key.name))
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
        typealias Key = ConfigKeys.Gateway
        let before = m.context.errors.count
        let listen = m[Key.listen]
        let adminListen = m[Key.adminListen]
        let tls = tls(m)
        let connections = connections(m)
        m.missing(Key.issuer)
        let issuer = m.value(Key.issuer) == nil ? nil : m.scalar(Key.issuer)?.text.trimmingWhitespace()
        let jwks = jwksClient(m)
        let clockSkew = m[Key.clockSkew]
        let dpop = dpop(m.map(Key.DPoP.block))
        let timeouts = timeouts(m.map(ConfigKeys.Timeouts.block), base: TimeoutsConfig())
        let routes = routes(m, timeouts: timeouts)
        let authorize = m.has(Key.Authorize.block) ? authorize(m.map(Key.Authorize.block), gatewayListen: listen) : nil
        guard m.context.errors.count == before, let tls, let issuer, let jwks else { return nil }
        return GatewayConfig(
            listen: listen, adminListen: adminListen, tls: tls, connections: connections, issuer: issuer, jwks: jwks, clockSkew: clockSkew,
            dpop: dpop, timeouts: timeouts, routes: routes, authorize: authorize)
    }

    /// `gateway.authorize`: its own listener (TLS, or plaintext on loopback only) and the
    /// callers it answers; identities need client certificates to be asked for.
    static func authorize(_ m: MapReader, gatewayListen: ListenAddress) -> AuthorizeConfig? {
        typealias Key = ConfigKeys.Gateway.Authorize
        let before = m.context.errors.count
        let listen = m[Key.listen]
        if listen == gatewayListen {
            m.context.error(
                m.childPath(Key.listen), "is gateway.listen too; the authorize listener needs its own address (e.g. 127.0.0.1:9444), never the public one",
                m.raw(Key.listen))
        }
        let tls = tls(m)
        if tls == TLSSettings.none && !listen.isLoopback {
            m.context.error(
                m.childPath(ConfigKeys.TLS.block),
                "none is allowed only on a loopback listen address (127.0.0.1, ::1, localhost), not \(listen); listen on loopback or give {cert, key, client_ca, client_auth: required}",
                m.raw(ConfigKeys.TLS.block))
        }
        let grpcListen = m[Key.grpcListen]
        if let grpcListen {
            if grpcListen == listen || grpcListen == gatewayListen {
                m.context.error(
                    m.childPath(Key.grpcListen),
                    "is \(grpcListen == listen ? "gateway.authorize.listen" : "gateway.listen") too; the gRPC Check service needs its own address (e.g. 127.0.0.1:9445)",
                    m.raw(Key.grpcListen))
            }
            if tls == TLSSettings.none && !grpcListen.isLoopback {
                m.context.error(
                    m.childPath(Key.grpcListen),
                    "\(grpcListen) is not a loopback address and gateway.authorize.tls is none; plaintext gRPC is allowed only on loopback (127.0.0.1, ::1, localhost), so listen there or give tls {cert, key, client_ca, client_auth: required}",
                    m.raw(Key.grpcListen))
            }
        }
        m.missing(Key.trustedClients)
        var trusted: [TrustedClient] = []
        for (index, text) in (m.value(Key.trustedClients) ?? []).enumerated() {
            guard let entry = TrustedClient(parsing: text.trimmingWhitespace()) else {
                m.context.error(
                    "\(m.childPath(Key.trustedClients)).\(index)",
                    "\"\(text)\" is neither an identity (spiffe://trust-domain/path, or x509:<CN> for a certificate without a SPIFFE ID) nor an address range (127.0.0.1/32, 10.0.0.0/8, ::1/128)",
                    m.raw(Key.trustedClients))
                continue
            }
            trusted.append(entry)
        }
        if m.isEmptyList(Key.trustedClients) {
            m.context.error(m.childPath(Key.trustedClients), "must list at least one identity or address range; nobody would be answered", m.raw(Key.trustedClients))
        }
        if let identity = trusted.first(where: \.isIdentity), (tls?.files?.clientAuth ?? ClientAuthMode.none) == .none {
            m.context.error(
                m.childPath(Key.trustedClients),
                "names the identity \(identity) but gateway.authorize.tls asks for no client certificate; add client_ca and client_auth: required, or trust address ranges",
                m.raw(Key.trustedClients))
        }
        var pathPrefix = m[Key.pathPrefix]?.trimmingWhitespace()
        if let text = pathPrefix {
            while pathPrefix?.hasSuffix("/") == true { pathPrefix?.removeLast() }
            let segments = (pathPrefix ?? "").split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            let plain = segments.allSatisfy { segment in
                !segment.isEmpty && segment != "." && segment != ".."
                    && segment.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._~".contains($0)) }
            }
            if !text.hasPrefix("/") || segments.isEmpty || !plain {
                m.context.error(
                    m.childPath(Key.pathPrefix), "\"\(text)\" must be a path of plain segments starting with / (e.g. /ext_authz), not / alone",
                    m.raw(Key.pathPrefix))
            }
        }
        guard m.context.errors.count == before, let tls else { return nil }
        return AuthorizeConfig(listen: listen, tls: tls, trustedClients: trusted, pathPrefix: pathPrefix, grpcListen: grpcListen)
    }

    static func jwksClient(_ parent: MapReader) -> JWKSClientConfig? {
        typealias Key = ConfigKeys.Gateway.JWKS
        guard parent.has(Key.block) else {
            parent.missing(Key.block.name, "where the gateway fetches keys: {url: https://host:7443/.well-known/jwks.json, ca: FILE}")
            return nil
        }
        let m = parent.map(Key.block)
        m.missing(Key.url)
        let url = m.value(Key.url)
        let ca = m[Key.ca]
        let cert = m[Key.cert]
        let key = m[Key.key]
        if m.has(Key.cert) != m.has(Key.key) {
            m.context.error(m.path, "cert and key go together (the client certificate and its key); give both or neither", m.origin())
        }
        guard let url else { return nil }
        return JWKSClientConfig(url: url, ca: ca, cert: cert, key: key)
    }

    static func dpop(_ m: MapReader) -> DPoPConfig {
        typealias Key = ConfigKeys.Gateway.DPoP
        let config = DPoPConfig(
            maxAge: m[Key.maxAge],
            requireATH: m[Key.requireATH],
            nonce: m[Key.nonce],
            nonceWindow: m[Key.nonceWindow],
            nonceSecretFile: m[Key.nonceSecretFile]
        )
        if config.nonce && !m.has(Key.nonceSecretFile) {
            m.context.error(
                m.childPath(Key.nonce),
                "nonce: true needs nonce_secret_file (a file of at least 32 random bytes shared by every gateway replica, e.g. `head -c 32 /dev/urandom > pki/dpop-nonce.key`)",
                m.raw(Key.nonce))
        }
        return config
    }

    static func routes(_ m: MapReader, timeouts: TimeoutsConfig) -> [RouteConfig] {
        typealias Key = ConfigKeys.Gateway.Route
        guard m.has(Key.block) else {
            m.missing(Key.block.name, "at least one {prefix: /, upstream: http://host:port, audience: ..., public_origin: https://...}")
            return []
        }
        let items = m.list(Key.block)
        if m.isEmptyList(Key.block) {
            m.context.error(m.childPath(Key.block), "must list at least one route", m.raw(Key.block))
        }
        var result: [RouteConfig] = []
        var prefixes: [String: String] = [:]
        for item in items {
            item.missing(Key.prefix)
            item.missing(Key.upstream)
            item.missing(Key.audience)
            item.missing(Key.publicOrigin)
            var prefix = item.value(Key.prefix)
            if let text = prefix {
                if !text.hasPrefix("/") {
                    item.context.error(item.childPath(Key.prefix), "\"\(text)\" must start with /", item.raw(Key.prefix))
                    prefix = nil
                } else if let other = prefixes[text] {
                    item.context.error(item.childPath(Key.prefix), "\"\(text)\" is already routed by \(other); prefixes must be unique", item.raw(Key.prefix))
                } else {
                    prefixes[text] = item.path
                }
            }
            let upstream = item.value(Key.upstream)
            let audience = item.value(Key.audience)
            let origin = item.value(Key.publicOrigin)
            let upstreamCA = item[Key.upstreamCA]
            if upstreamCA != nil, let upstream, upstream.scheme?.lowercased() != "https" {
                item.context.warnings.append("\(item.childPath(Key.upstreamCA)) is ignored: the upstream is not https://")
            }
            let routeTimeouts = Self.timeouts(item.map(ConfigKeys.Timeouts.block), base: timeouts)
            guard let prefix, let upstream, let audience, let origin else { continue }
            result.append(RouteConfig(
                prefix: prefix, upstream: upstream, audience: audience, publicOrigin: origin, upstreamCA: upstreamCA,
                timeouts: routeTimeouts))
        }
        return result
    }

    // MARK: jwks

    static func jwks(_ m: MapReader) -> JWKSConfig? {
        typealias Key = ConfigKeys.JWKS
        let before = m.context.errors.count
        let listen = m[Key.listen]
        let adminListen = m[Key.adminListen]
        let tls = tls(m)
        let issuers = m[Key.authorizedIssuers]
        let admins = m[Key.admins]
        if issuers.isEmpty {
            m.context.warnings.append("jwks.authorized_issuers is empty: no issuer can register a signing key")
        }
        let config = JWKSConfig(
            listen: listen, adminListen: adminListen, tls: tls ?? TLSSettings.none, connections: connections(m), authorizedIssuers: issuers,
            admins: admins, cacheMaxAge: m[Key.cacheMaxAge], retain: m[Key.retain])
        guard m.context.errors.count == before, tls != nil else { return nil }
        return config
    }
}
