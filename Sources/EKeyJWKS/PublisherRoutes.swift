import EKeyProtocol
public import EKeyServer
public import EKeyStore
import Foundation
public import Hummingbird
public import Logging
import HTTPTypes
import NIOCore

/// The publisher's HTTP routes (docs/spec/publisher.md).
///
/// - `GET /.well-known/jwks.json`: the live keys, cacheable, with `ETag` and 304.
/// - `POST /internal/v1/keys`: an issuer in `authorized_issuers` registers a key; a revoked
///   kid gets 410 `key_revoked`.
/// - `DELETE /internal/v1/keys/{kid}`, `GET` and `PUT /internal/v1/keys`: admins revoke
///   (the kid is remembered as a tombstone for `retain`), export and import.
///
/// Internal routes need a client certificate (401 without one) whose identity is on the
/// route's list (403 otherwise).
public struct PublisherRoutes: Sendable {
    /// What the routes need from the configuration.
    public struct Settings: Sendable {
        /// Identities (SPIFFE IDs or `x509:<CN>`) allowed to register keys.
        public var authorizedIssuers: Set<String>
        /// Identities allowed to revoke, export and import.
        public var admins: Set<String>
        /// `Cache-Control: max-age` of the JWKS document.
        public var cacheMaxAge: Duration
        /// How long a key stays published after its `not_after`, and how long a revoked kid
        /// is remembered (refused) after its revocation.
        public var retain: Duration

        /// Creates settings.
        public init(authorizedIssuers: Set<String>, admins: Set<String>, cacheMaxAge: Duration = .seconds(30), retain: Duration = .seconds(86_400)) {
            self.authorizedIssuers = authorizedIssuers
            self.admins = admins
            self.cacheMaxAge = cacheMaxAge
            self.retain = retain
        }
    }

    /// Largest accepted request body: one registration, or an import of many keys.
    static let maximumBodySize = 1 << 20

    let settings: Settings
    let keys: any PublishedKeyStore
    let metrics: MetricsRegistry
    let audit: AuditLog
    let logger: Logger
    let now: @Sendable () -> Int64

    /// Creates the routes over `keys`.
    public init(
        settings: Settings, keys: any PublishedKeyStore, metrics: MetricsRegistry, audit: AuditLog = AuditLog(), logger: Logger,
        now: @escaping @Sendable () -> Int64 = WallClock.epochSeconds
    ) {
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        self.now = now
            }

    /// The route patterns of ``register(on:)``, for the `route` label of the request metrics.
    public static let paths = ["/.well-known/jwks.json", "/internal/v1/keys", "/internal/v1/keys/:kid"]

    /// Adds the routes to `router`.
    public func register(on router: Router<EKeyRequestContext>) {
        // Every path below is in `paths` (the route label of the request metrics).
        router.get("/.well-known/jwks.json") { request, _ in await self.jwks(request) }
        router.post("/internal/v1/keys") { request, context in await self.registerKey(request, context) }
        router.get("/internal/v1/keys") { _, context in await self.export(context) }
        router.put("/internal/v1/keys") { request, context in await self.importKeys(request, context) }
        router.delete("/internal/v1/keys/:kid") { _, context in await self.revoke(context) }
    }

    var retainSeconds: Int64 { settings.retain.components.seconds }

    // MARK: Routes

    func jwks(_ request: Request) async -> Response {
        count("jwks")
        let stored: [PublishedKey]
        do {
            stored = try await timedStore { try await keys.all() }
        } catch {
            return storeFailure(error, doing: "read the key set")
        }
        let document = JWKSDocument(keys: stored, now: now(), retainSeconds: retainSeconds)
        var headers: HTTPFields = [
            .cacheControl: "public, max-age=\(settings.cacheMaxAge.components.seconds)",
            .eTag: document.entityTag,
        ]
        if let ifNoneMatch = request.headers[.ifNoneMatch], document.matches(ifNoneMatch: ifNoneMatch) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/jwk-set+json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: document.body)))
    }

    func registerKey(_ request: Request, _ context: EKeyRequestContext) async -> Response {
        count("register")
        var event = AuditEvent(event: "key_register", outcome: "denied")
        event.method = "POST"
        event.path = "/internal/v1/keys"
        event.client = context.clientAddress
        let caller: String
        switch await authorise(context, list: settings.authorizedIssuers, listName: "jwks.authorized_issuers") {
        case .failure(let error):
            return deny(error, event: &event, outcome: "denied")
        case .success(let identity):
            caller = identity
        }
        event.subject = caller
        let key: PublishedKey
        do {
            let body = try await request.body.collect(upTo: Self.maximumBodySize)
            let registration = try KeyRegistration(body: Array(body.readableBytesView))
            key = try PublishedKey(registration: registration, registeredAt: now(), registeredBy: caller)
        } catch let error as EKeyError {
            return deny(error, event: &event, outcome: "denied")
        } catch {
            return deny(EKeyError(.invalidRequest, "the body could not be read (at most 1 MiB): \(error)"), event: &event, outcome: "denied")
        }
        event.extra["kid"] = key.keyID
        let result: KeyRegistrationResult
        do {
            result = try await timedStore { try await keys.register(key) }
        } catch {
            registrations("error")
            event.outcome = "error"
            event.reason = "store_unavailable"
            audit.record(event)
            return storeFailure(error, doing: "register the key")
        }
        switch result {
        case .created, .alreadyRegistered:
            registrations(result == .created ? "created" : "unchanged")
            event.outcome = "registered"
            audit.record(event)
            return .json(["kid": .string(key.keyID), "status": result == .created ? "created" : "unchanged"], status: result == .created ? .created : .ok)
        case .conflict:
            registrations("conflict")
            let error = EKeyError(.invalidRequest, "kid \(key.keyID) is already registered with a different key; use a new kid for a new key", status: 409)
            return deny(error, event: &event, outcome: "denied")
        case .revoked(let tombstone):
            registrations("revoked")
            let error = EKeyError(
                .keyRevoked,
                "kid \(key.keyID) was revoked by an administrator at \(tombstone.revokedAt) (epoch seconds) and cannot be registered again, with this key or any other; stop signing with this key, generate a new key with a new kid and register that")
            return deny(error, event: &event, outcome: "denied")
        }
    }

    func revoke(_ context: EKeyRequestContext) async -> Response {
        count("revoke")
        var event = AuditEvent(event: "key_revoke", outcome: "denied")
        event.method = "DELETE"
        event.client = context.clientAddress
        let keyID = context.parameters.get("kid") ?? ""
        event.path = "/internal/v1/keys/\(keyID)"
        event.extra["kid"] = keyID
        switch await authorise(context, list: settings.admins, listName: "jwks.admins") {
        case .failure(let error):
            return deny(error, event: &event, outcome: "denied")
        case .success(let identity):
            event.subject = identity
        }
        let time = now()
        let outcome: KeyRevocationResult
        do {
            outcome = try await timedStore { try await keys.revoke(keyID: keyID, at: time, forgetAfter: time + retainSeconds) }
        } catch {
            return storeFailure(error, doing: "revoke the key")
        }
        switch outcome {
        case .unknown:
            return deny(EKeyError(.invalidRequest, "no key with kid \(keyID) is registered", status: 404), event: &event, outcome: "denied")
        case .revoked(let tombstone):
            event.outcome = "revoked"
            event.extra["forget_after"] = String(tombstone.forgetAfter)
        case .alreadyRevoked(let tombstone):
            event.outcome = "already_revoked"
            event.extra["forget_after"] = String(tombstone.forgetAfter)
        }
        audit.record(event)
        return Response(status: .noContent)
    }

    func export(_ context: EKeyRequestContext) async -> Response {
        count("export")
        if case .failure(let error) = await authorise(context, list: settings.admins, listName: "jwks.admins") {
            return .error(error)
        }
        do {
            let stored = try await timedStore { try await keys.all() }
            let tombstones = try await timedStore { try await keys.tombstones() }
            // A key revoked between the two reads shows in both: the tombstone wins.
            let revoked = Set(tombstones.map(\.keyID))
            let live = stored.filter { !revoked.contains($0.keyID) }.sorted { $0.keyID < $1.keyID }
            return .json(["keys": .array(live.map(\.jsonValue)), "revoked": .array(tombstones.map(\.jsonValue))])
        } catch {
            return storeFailure(error, doing: "export the key set")
        }
    }

    func importKeys(_ request: Request, _ context: EKeyRequestContext) async -> Response {
        count("import")
        var event = AuditEvent(event: "key_register", outcome: "denied")
        event.method = "PUT"
        event.path = "/internal/v1/keys"
        event.client = context.clientAddress
        switch await authorise(context, list: settings.admins, listName: "jwks.admins") {
        case .failure(let error):
            return deny(error, event: &event, outcome: "denied")
        case .success(let identity):
            event.subject = identity
        }
        let imported: [PublishedKey]
        let tombstones: [Tombstone]
        do {
            let body = try await request.body.collect(upTo: Self.maximumBodySize)
            let parsed = try Self.parseExport(Array(body.readableBytesView))
            imported = parsed.keys
            tombstones = parsed.tombstones
        } catch let error as EKeyError {
            return deny(error, event: &event, outcome: "denied")
        } catch {
            return deny(EKeyError(.invalidRequest, "the body could not be read (at most 1 MiB): \(error)"), event: &event, outcome: "denied")
        }
        let outcome: KeyImportResult
        do {
            outcome = try await timedStore { try await keys.replaceAll(with: imported, tombstones: tombstones) }
        } catch {
            return storeFailure(error, doing: "import the key set")
        }
        if case .revokedKey(let tombstone) = outcome {
            let error = EKeyError(
                .keyRevoked,
                "the import was refused and nothing changed: kid \(tombstone.keyID) was revoked at \(tombstone.revokedAt) (epoch seconds) and is remembered until \(tombstone.forgetAfter); remove that key from \"keys\" and import again",
                status: 409)
            return deny(error, event: &event, outcome: "denied")
        }
        event.outcome = "registered"
        event.extra["imported"] = String(imported.count)
        audit.record(event)
        return .json(["imported": .integer(Int64(imported.count))])
    }

    /// Reads the export format `{"keys": [record, ...], "revoked": [tombstone, ...]}`;
    /// `"revoked"` may be absent (exports made before tombstones existed). Duplicate kids
    /// in either list are refused.
    static func parseExport(_ bytes: [UInt8]) throws(EKeyError) -> (keys: [PublishedKey], tombstones: [Tombstone]) {
        let document = try StrictJSONParser().parseObject(bytes) { EKeyError(.invalidRequest, "the body must be a JSON object {\"keys\": [...]}: \($0)") }
        guard let records = document["keys"]?.arrayValue else {
            throw EKeyError(.invalidRequest, "the body must carry a \"keys\" array, as GET /internal/v1/keys returns")
        }
        var seen = Set<String>()
        var keys: [PublishedKey] = []
        for record in records {
            let key = try PublishedKey(jsonValue: record)
            guard seen.insert(key.keyID).inserted else {
                throw EKeyError(.invalidRequest, "kid \(key.keyID) appears twice in the import")
            }
            keys.append(key)
        }
        var tombstones: [Tombstone] = []
        if let revoked = document["revoked"] {
            guard let records = revoked.arrayValue else {
                throw EKeyError(.invalidRequest, "\"revoked\" must be an array, as GET /internal/v1/keys returns")
            }
            var seenRevoked = Set<String>()
            for record in records {
                let tombstone = try Tombstone(jsonValue: record)
                guard seenRevoked.insert(tombstone.keyID).inserted else {
                    throw EKeyError(.invalidRequest, "revoked kid \(tombstone.keyID) appears twice in the import")
                }
                tombstones.append(tombstone)
            }
        }
        return (keys, tombstones)
    }

    // MARK: Helpers

    enum Authorisation {
        case success(String)
        case failure(EKeyError)
    }

    func authorise(_ context: EKeyRequestContext, list: Set<String>, listName: String) async -> Authorisation {
        guard let peer = await context.peerIdentity() else {
            return .failure(EKeyError(.invalidClient, "this route needs a TLS client certificate; connect with the service's client certificate"))
        }
        guard list.contains(peer.identity) else {
            return .failure(EKeyError(.accessDenied, "\(peer.identity) is not allowed here; add it to \(listName)"))
        }
        return .success(peer.identity)
    }

    func deny(_ error: EKeyError, event: inout AuditEvent, outcome: String) -> Response {
        if event.event == "key_register", error.status != 409, error.status != 410 {
            registrations("denied")
        }
        event.outcome = outcome
        event.reason = error.reason
        audit.record(event)
        return .error(error)
    }

    func storeFailure(_ error: any Error, doing what: String) -> Response {
        logger.error("the key store failed", metadata: ["error": "\(error)", "operation": .string(what)])
        return .error(EKeyError(.temporarilyUnavailable, "the publisher could not \(what): its store is unavailable; retry shortly"))
    }

    func count(_ route: String) {
        metrics.increment("ekey_jwks_requests_total", [("route", route)])
    }

    func registrations(_ outcome: String) {
        metrics.increment("ekey_jwks_registrations_total", [("outcome", outcome)])
    }

    func timedStore<T>(_ operation: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        defer { metrics.record("ekey_store_seconds", ContinuousClock.now - start) }
        return try await operation()
    }
}
