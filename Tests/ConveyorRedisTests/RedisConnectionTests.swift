import ConveyorRedis
import ConveyorTestSupport
import Foundation
import Testing

@Suite("Redis connection")
struct RedisConnectionTests {
    @Test("round-trips binary, empty and non-ASCII arguments")
    func binarySafe() async throws {
        let redis = RedisConnection(configuration: try TestRedis.configuration())
        let key = Data("\(TestRedis.namespace()):bytes".utf8)
        let values: [Data] = [Data(), Data("héllo wörld ✓".utf8), Data([0, 255, 10, 13, 0]), Data(repeating: 7, count: 100_000)]
        for value in values {
            #expect(try await redis.send([Data("SET".utf8), key, value]) == .status("OK"))
            #expect(try await redis.send([Data("GET".utf8), key]) == .bulk(value))
        }
        #expect(try await redis.send("GET", "\(TestRedis.namespace()):missing") == .null)
        #expect(try await redis.send("DEL", String(decoding: key, as: UTF8.self)) == .integer(1))
    }

    @Test("an error reply is a value; the connection stays usable")
    func errorReply() async throws {
        let redis = RedisConnection(configuration: try TestRedis.configuration())
        guard case .error(let message) = try await redis.send("NOSUCHCOMMAND") else {
            Issue.record("expected an error reply")
            return
        }
        #expect(message.contains("unknown command"))
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test("pipelines many commands in one round trip, replies in order")
    func pipelining() async throws {
        let redis = RedisConnection(configuration: try TestRedis.configuration())
        let list = "\(TestRedis.namespace()):list"
        let pushes = (0..<1000).map { [Data("RPUSH".utf8), Data(list.utf8), Data("item-\($0)".utf8)] }
        let replies = try await redis.pipeline(pushes)
        #expect(replies.map(\.int) == (1...1000).map { $0 })
        let range = try await redis.send("LRANGE", list, "0", "2")
        #expect(range.elements.compactMap(\.string) == ["item-0", "item-1", "item-2"])
        try await redis.send("DEL", list)
    }

    @Test("a blocking command waits on its own thread: other tasks keep running")
    func blockingOffThePool() async throws {
        let configuration = try TestRedis.configuration()
        let blocked = RedisConnection(configuration: configuration, name: "blocked")
        let other = RedisConnection(configuration: configuration, name: "other")
        let namespace = TestRedis.namespace()
        try await blocked.connect()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Several blocked BLMOVEs at once: on the cooperative pool (two threads) they would freeze it.
            var waiters: [RedisConnection] = []
            for index in 0..<3 {
                let connection = index == 0 ? blocked : RedisConnection(configuration: configuration, name: "blocked-\(index)")
                waiters.append(connection)
                group.addTask {
                    _ = try await connection.sendBlocking(
                        ["BLMOVE", "\(namespace):src\(index)", "\(namespace):dst", "RIGHT", "LEFT", "5"].map { Data($0.utf8) },
                        timeout: .seconds(5))
                }
            }
            // Meanwhile the pool is free: plain async work and another connection both proceed.
            let sum = await withTaskGroup(of: Int.self) { inner in
                for value in 1...100 { inner.addTask { value } }
                return await inner.reduce(0, +)
            }
            #expect(sum == 5050)
            #expect(try await other.send("PING") == .status("PONG"))
            // Release the blocked commands.
            for index in 0..<3 { try await other.send("LPUSH", "\(namespace):src\(index)", "x") }
            try await group.waitForAll()
        }
        #expect(try await other.send("LLEN", "\(namespace):dst") == .integer(3))
        try await other.send("DEL", "\(namespace):dst")
    }

    @Test("a killed connection fails one command, then reconnects")
    func reconnects() async throws {
        let configuration = try TestRedis.configuration()
        let redis = RedisConnection(configuration: configuration)
        let admin = RedisConnection(configuration: configuration)
        let id = try #require(try await redis.send("CLIENT", "ID").int)
        #expect(try await admin.send("CLIENT", "KILL", "ID", String(id)) == .integer(1))
        await #expect {
            try await redis.send("PING")
        } throws: { error in
            if case RedisError.connectionLost = error { return true }
            return false
        }
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test("an unreachable server is a clear connect error")
    func unreachable() async throws {
        let redis = RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: 1, connectTimeout: .seconds(1)))
        await #expect {
            try await redis.send("PING")
        } throws: { error in
            guard case RedisError.connectFailed(let reason) = error else { return false }
            return reason.contains("127.0.0.1:1") && reason.lowercased().contains("refused")
        }
    }

    @Test("parses REDIS_URL forms", arguments: [
        ("redis://127.0.0.1:6380/2", "127.0.0.1", 6380, nil as String?, nil as String?, 2),
        ("redis://:s3cret@cache.internal", "cache.internal", 6379, nil, "s3cret", 0),
        ("redis://app:pw@h:1/0", "h", 1, "app", "pw", 0),
    ])
    func parsesURLs(url: String, host: String, port: Int, user: String?, password: String?, database: Int) throws {
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.host == host && configuration.port == port && configuration.database == database)
        #expect(configuration.username == user && configuration.password == password)
        #expect(!configuration.description.contains("s3cret"))
    }

    @Test("rejects malformed REDIS_URLs with a reason", arguments: [
        ("http://h", "scheme"), ("redis://", "no host"), ("redis://h:0", "out of range"), ("redis://h/x", "database"),
    ])
    func rejectsURLs(url: String, reason: String) {
        #expect { try RedisConfiguration(url: url) } throws: { String(describing: $0).contains(reason) }
    }
}
