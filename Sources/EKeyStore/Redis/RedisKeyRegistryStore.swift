internal import Foundation

/// The publisher's key set in the Redis hash `<prefix>jwks:keys` (kid → record JSON: a
/// key, or the tombstone of a revoked kid); a single key, so in a cluster it lives in
/// one slot and every script on it is atomic.
public struct RedisKeyRegistryStore: KeyRegistryStore {
    public let client: RedisClient
    public let prefix: String

    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    public var hashKey: String { "\(self.prefix)jwks:keys" }

    /// A record of the hash.
    private enum Record {
        case key(RegisteredKey)
        case tombstone(RevokedKey)
    }

    /// Tells a tombstone (it has `revoked_at`) from a key record.
    private struct RecordShape: Decodable {
        var revokedAt: Int64?

        enum CodingKeys: String, CodingKey {
            case revokedAt = "revoked_at"
        }
    }

    public func put(_ key: RegisteredKey) async throws -> KeyRegistrationOutcome {
        let record = try self.encode(key)
        let notAfter = key.notAfter.map { String($0) } ?? ""
        let reply = try await self.client.run(
            RedisScripts.keyRegistryPut, keys: [self.hashKey], arguments: [key.kid, key.jwk, record, notAfter])
        guard let values = reply.array, values.count == 2, let status = values[0].int, let stored = values[1].string else {
            throw StoreError.protocolViolation(self.client.url.description, "key_registry_put.lua returned \(reply)")
        }
        let answer = try self.decode(stored)
        switch (status, answer) {
        case (201, .key(let storedKey)): return .created(storedKey)
        case (200, .key(let storedKey)): return .unchanged(storedKey)
        case (409, .key(let storedKey)): return .conflict(existing: storedKey)
        case (410, .tombstone(let tombstone)): return .revoked(tombstone)
        default: throw StoreError.protocolViolation(self.client.url.description, "key_registry_put.lua returned status \(status) with \(stored)")
        }
    }

    public func revoke(kid: String, at revokedAt: Int64, forgetAfter: Int64) async throws -> KeyRevocationOutcome {
        let tombstone = RevokedKey(kid: kid, revokedAt: revokedAt, forgetAfter: forgetAfter)
        let reply = try await self.client.run(
            RedisScripts.keyRegistryRevoke, keys: [self.hashKey], arguments: [kid, try self.encode(tombstone)])
        guard let values = reply.array, values.count == 2, let status = values[0].int, let stored = values[1].string else {
            throw StoreError.protocolViolation(self.client.url.description, "key_registry_revoke.lua returned \(reply)")
        }
        if status == 404 { return .unknown }
        let record = try self.decode(stored)
        switch (status, record) {
        case (204, .tombstone(let tombstone)): return .revoked(tombstone)
        case (200, .tombstone(let tombstone)): return .alreadyRevoked(tombstone)
        default: throw StoreError.protocolViolation(self.client.url.description, "key_registry_revoke.lua returned status \(status) with \(stored)")
        }
    }

    public func list() async throws -> [RegisteredKey] {
        try await self.records().compactMap { record in
            guard case .key(let key) = record else { return nil }
            return key
        }.sorted { $0.kid < $1.kid }
    }

    public func revokedKeys() async throws -> [RevokedKey] {
        try await self.records().compactMap { record in
            guard case .tombstone(let tombstone) = record else { return nil }
            return tombstone
        }.sorted { $0.kid < $1.kid }
    }

    public func importAll(_ keys: [RegisteredKey], revoked: [RevokedKey]) async throws -> KeyImportOutcome {
        var arguments = [String(keys.count)]
        for key in keys {
            arguments.append(key.kid)
            arguments.append(try self.encode(key))
        }
        for tombstone in revoked {
            arguments.append(tombstone.kid)
            arguments.append(try self.encode(tombstone))
        }
        let reply = try await self.client.run(RedisScripts.keyRegistryImport, keys: [self.hashKey], arguments: arguments)
        guard let values = reply.array, values.count == 2, let status = values[0].int else {
            throw StoreError.protocolViolation(self.client.url.description, "key_registry_import.lua returned \(reply)")
        }
        if status == 200, let count = values[1].int {
            return .imported(count)
        }
        if status == 409, let stored = values[1].string, case .tombstone(let tombstone) = try self.decode(stored) {
            return .revokedKey(tombstone)
        }
        throw StoreError.protocolViolation(self.client.url.description, "key_registry_import.lua returned \(reply)")
    }

    public func purge(keysNotAfterUpTo keyCutoff: Int64, tombstonesForgetAfterBefore tombstoneCutoff: Int64) async throws -> Int {
        let reply = try await self.client.run(
            RedisScripts.keyRegistryPurge, keys: [self.hashKey], arguments: [String(keyCutoff), String(tombstoneCutoff)])
        guard let removed = reply.int else {
            throw StoreError.protocolViolation(self.client.url.description, "key_registry_purge.lua returned \(reply)")
        }
        return removed
    }

    private func records() async throws -> [Record] {
        let reply = try await self.client.send(RedisCommand("HVALS", self.hashKey), routingKey: self.hashKey)
        guard let values = reply.array else { throw self.unexpected("HVALS", reply) }
        return try values.map { value in
            guard let text = value.string else { throw self.unexpected("HVALS", reply) }
            return try self.decode(text)
        }
    }

    private func encode(_ record: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(record), as: UTF8.self)
    }

    private func decode(_ text: String) throws -> Record {
        let data = Data(text.utf8)
        do {
            let decoder = JSONDecoder()
            if try decoder.decode(RecordShape.self, from: data).revokedAt != nil {
                return .tombstone(try decoder.decode(RevokedKey.self, from: data))
            }
            return .key(try decoder.decode(RegisteredKey.self, from: data))
        } catch {
            throw StoreError.protocolViolation(
                self.client.url.description, "a record in \(self.hashKey) is neither a key nor a tombstone (\(error))")
        }
    }

    private func unexpected(_ command: String, _ reply: RedisValue) -> StoreError {
        if let message = reply.errorMessage {
            return StoreError(.serverError, "store \(self.client.url) failed \(command) on \(self.hashKey): \(message)")
        }
        return StoreError.protocolViolation(self.client.url.description, "\(command) returned \(reply)")
    }
}
