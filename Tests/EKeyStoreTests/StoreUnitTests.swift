@testable import EKeyStore
import NIOCore
import NIOEmbedded
import XCTest

/// Pure parts: URL parsing, cluster slots, SHA-1, the RESP codec.
final class StoreUnitTests: XCTestCase {
    func testStoreURLs() throws {
        let memory = try StoreURL("memory://?max_entries=10")
        XCTAssertEqual(memory.kind, .memory)
        XCTAssertEqual(memory.maxEntries, 10)

        let redis = try StoreURL("redis://alice:p%40ss@cache.internal:6380/2?pool_size=2&command_timeout_ms=250")
        XCTAssertEqual(redis.kind, .redis)
        XCTAssertEqual(redis.endpoints, [.init(host: "cache.internal", port: 6380)])
        XCTAssertEqual(redis.username, "alice")
        XCTAssertEqual(redis.password, "p@ss")
        XCTAssertEqual(redis.database, 2)
        XCTAssertEqual(redis.poolSize, 2)
        XCTAssertEqual(redis.commandTimeoutMilliseconds, 250)
        XCTAssertEqual(redis.description, "redis://alice:***@cache.internal:6380/2")

        let passwordOnly = try StoreURL("rediss://secret@[::1]?ca=/etc/ca.pem")
        XCTAssertTrue(passwordOnly.tls)
        XCTAssertNil(passwordOnly.username)
        XCTAssertEqual(passwordOnly.password, "secret")
        XCTAssertEqual(passwordOnly.endpoints, [.init(host: "::1", port: 6379)])
        XCTAssertEqual(passwordOnly.caFile, "/etc/ca.pem")
        XCTAssertEqual(passwordOnly.description, "rediss://***@[::1]:6379/0")

        let cluster = try StoreURL("redis-cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3")
        XCTAssertEqual(cluster.kind, .cluster)
        XCTAssertEqual(cluster.endpoints.map(\.port), [7000, 7001, 6379])

        for bad in ["cache:6379", "http://x", "redis://h:0", "redis://h:6379/x", "redis://a,b", "redis-cluster://a/1", "redis://h?bogus=1",
                    "redis://user:topsecret@h:99999", "redis://h?ca=/x", "memory://host"] {
            XCTAssertThrowsError(try StoreURL(bad), bad) { error in
                let error = error as! StoreError
                XCTAssertEqual(error.code, .invalidURL)
                XCTAssertFalse(error.message.contains("topsecret"), error.message)
            }
        }
    }

    func testClusterSlots() {
        XCTAssertEqual(ClusterSlot.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(ClusterSlot.of("foo"), 12182)
        XCTAssertEqual(ClusterSlot.of("{user1000}.following"), ClusterSlot.of("{user1000}.followers"))
        XCTAssertEqual(ClusterSlot.of("ekey:trace:{abc}"), ClusterSlot.of("ekey:dpop:{abc}:jti-1"))
        XCTAssertEqual(ClusterSlot.of("foo{}{bar}"), ClusterSlot.of("foo{}{bar}"), "an empty tag hashes the whole key")
        XCTAssertNotEqual(ClusterSlot.of("foo{}{bar}"), ClusterSlot.of("bar"))
        XCTAssertEqual(ClusterRedirect(errorMessage: "MOVED 3999 127.0.0.1:6381"), .moved(slot: 3999, to: .init(host: "127.0.0.1", port: 6381)))
        XCTAssertEqual(ClusterRedirect(errorMessage: "ASK 1 [::1]:7000"), .ask(slot: 1, to: .init(host: "::1", port: 7000)))
        XCTAssertNil(ClusterRedirect(errorMessage: "ERR wrong"))
    }

    func testSHA1() {
        XCTAssertEqual(ScriptDigest.sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(ScriptDigest.sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(
            ScriptDigest.sha1Hex(String(repeating: "a", count: 1000)), "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    func testEncoderWritesRESPArrays() throws {
        var buffer = ByteBuffer()
        try RESPCommandEncoder.encode(RedisCommand("SET", "k", ""), into: &buffer)
        XCTAssertEqual(String(buffer: buffer), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
    }

    /// Replies fed one byte at a time, and several in one read, decode the same.
    func testDecoderHandlesSplitAndBatchedReplies() throws {
        let wire = "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n"
        let expected: [RedisValue] = [
            .simpleString("OK"), .error("ERR bad"), .integer(42), .bulkString(Array("hello".utf8)), .null,
            .array([.integer(1), .array([.bulkString([])]), .null]),
        ]
        for chunkSize in [1, 3, wire.utf8.count] {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder()))
            let bytes = Array(wire.utf8)
            for start in stride(from: 0, to: bytes.count, by: chunkSize) {
                try channel.writeInbound(ByteBuffer(bytes: bytes[start..<min(start + chunkSize, bytes.count)]))
            }
            var decoded: [RedisValue] = []
            while let value = try channel.readInbound(as: RedisValue.self) { decoded.append(value) }
            XCTAssertEqual(decoded, expected, "chunks of \(chunkSize)")
            XCTAssertTrue(try channel.finish().isClean)
        }
    }

    func testDecoderRejectsGarbage() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder()))
        XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(string: "?what\r\n")))
        _ = try? channel.finish()
    }
}
