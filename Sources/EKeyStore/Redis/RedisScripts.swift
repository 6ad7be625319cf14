/// A Lua script run with `EVALSHA`; its SHA-1 is computed from the embedded source.
public struct RedisScript: Sendable, Hashable {
    /// The file name under `Redis/Scripts/`, for messages.
    public let name: String
    public let source: String
    public let sha1: String

    init(name: String, bytes: [UInt8]) {
        self.name = name
        self.source = String(decoding: bytes, as: UTF8.self)
        self.sha1 = ScriptDigest.sha1Hex(self.source)
    }
}

/// The scripts of `Sources/EKeyStore/Redis/Scripts/`, embedded at build time.
public enum RedisScripts {
    public static let consume = RedisScript(name: "consume.lua", bytes: PackageResources.consume_lua)
    public static let refund = RedisScript(name: "refund.lua", bytes: PackageResources.refund_lua)
    public static let rateLimit = RedisScript(name: "rate_limit.lua", bytes: PackageResources.rate_limit_lua)
    public static let keyRegistryPut = RedisScript(name: "key_registry_put.lua", bytes: PackageResources.key_registry_put_lua)
    public static let keyRegistryImport = RedisScript(
        name: "key_registry_import.lua", bytes: PackageResources.key_registry_import_lua)
    public static let keyRegistryRevoke = RedisScript(
        name: "key_registry_revoke.lua", bytes: PackageResources.key_registry_revoke_lua)
    public static let keyRegistryPurge = RedisScript(name: "key_registry_purge.lua", bytes: PackageResources.key_registry_purge_lua)
}
