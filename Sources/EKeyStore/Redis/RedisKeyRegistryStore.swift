internal import Foundation

/// The publisher's key set in the Redis hash `<prefix>jwks:keys` (kid → record JSON);
/// a single key, so in a cluster it lives in one slot.
public struct RedisKeyRegistryStore: KeyRegistryStore {
    public let client: RedisClient
    public let prefix: String

    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    public var hashKey: String { "\(self.prefix)jwks:keys" }

    public func put(_ key: RegisteredKey) async throws -> KeyRegistrationOutcome {
        let record = try self.encode(key)
        let notAfter = key.notAfter.map { String($0) } ?? ""
        let reply = try await self.client.run(
            RedisScripts.keyRegistryPut, keys: [self.hashKey], arguments: [key.kid, key.jwk, record, notAfter])
        guard let values = reply.array, values.count == 2, let status = values[0].int, let stored = values[1].string else {
            throw StoreError.protocolViolation(self.client.url.description, "key_registry_put.lua returned \(reply)")
        }
        let storedKey = try self.decode(stored)
        switch status {
        case 201: return .created(storedKey)
        case 200: return .unchanged(storedKey)
        case 409: return .conflict(existing: storedKey)
        default: throw StoreError.protocolViolation(self.client.url.description, "key_registry_put.lua returned status \(status)")
        }
    }

    public func revoke(kid: String) async throws -> Bool {
        let reply = try await self.client.send(RedisCommand("HDEL", self.hashKey, kid), routingKey: self.hashKey)
        guard let removed = reply.int else { throw self.unexpected("HDEL", reply) }
        return removed == 1
    }

    public func list() async throws -> [RegisteredKey] {
        let reply = try await self.client.send(RedisCommand("HVALS", self.hashKey), routingKey: self.hashKey)
        guard let values = reply.array else { throw self.unexpected("HVALS", reply) }
        return try values.map { value in
            guard let text = value.string else { throw self.unexpected("HVALS", reply) }
            return try self.decode(text)
        }.sorted { $0.kid < $1.kid }
    }

    public func importAll(_ keys: [RegisteredKey]) async throws {
        var arguments: [String] = []
        for key in keys {
            arguments.append(key.kid)
            arguments.append(try self.encode(key))
        }
        _ = try await self.client.run(RedisScripts.keyRegistryImport, keys: [self.hashKey], arguments: arguments)
    }

    private func encode(_ key: RegisteredKey) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(key), as: UTF8.self)
    }

    private func decode(_ text: String) throws -> RegisteredKey {
        do {
            return try JSONDecoder().decode(RegisteredKey.self, from: Data(text.utf8))
        } catch {
            throw StoreError.protocolViolation(self.client.url.description, "a record in \(self.hashKey) is not a key record (\(error))")
        }
    }

    private func unexpected(_ command: String, _ reply: RedisValue) -> StoreError {
        if let message = reply.errorMessage {
            return StoreError(.serverError, "store \(self.client.url) failed \(command) on \(self.hashKey): \(message)")
        }
        return StoreError.protocolViolation(self.client.url.description, "\(command) returned \(reply)")
    }
}
