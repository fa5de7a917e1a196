import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import Foundation
import Testing

/// A redis-server of the test's own (daemonized, append-only), so it can be shut down and started
/// again mid-stream. Stopped with `SHUTDOWN` over Redis itself: nothing here waits on a child process.
struct OwnRedisServer: Sendable {
    let configuration: RedisConfiguration
    let directory: URL

    /// Starts a server on `configuration.port` with its files in `directory`.
    static func start(_ configuration: RedisConfiguration, directory: URL) async throws -> OwnRedisServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "redis-server", "--port", String(configuration.port), "--bind", "127.0.0.1", "--dir", directory.path,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "yes",
            "--pidfile", directory.appendingPathComponent("redis.pid").path,
        ]
        try process.run()
        let probe = RedisConnection(configuration: configuration)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if (try? await probe.send("PING")) == .status("PONG") {
                await probe.close()
                return OwnRedisServer(configuration: configuration, directory: directory)
            }
            await Task.yield()
        }
        throw NotUp()
    }

    /// Shuts the server down (it syncs its append-only file first).
    func stop() async {
        let connection = RedisConnection(configuration: configuration)
        _ = try? await connection.send("SHUTDOWN")
        await connection.close()
    }

    struct NotUp: Error {}
}

@Suite("Redis restarts", .timeLimit(.minutes(2)))
struct RedisRestartTests {
    @Test("the ingester survives a Redis restart mid-stream and loses nothing")
    func survivesRestart() async throws {
        try await TestDatabase.withFresh { client, _ in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-redis-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let port = Int.random(in: 20_000...40_000)
            let configuration = RedisConfiguration(host: "127.0.0.1", port: port, connectTimeout: .seconds(1), readTimeout: .seconds(2))
            let first = try await OwnRedisServer.start(configuration, directory: directory)

            let keys = IngressKeys()
            let store = PostgresJobStore(client: client)
            let probe = IngestProbe()
            let producer = RedisConnection(configuration: configuration)
            let all = (0..<600).map { IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0)}}"#) }
            let before = Array(all[..<300]), after = Array(all[300...])
            let ingester = IngesterHarness.ingester(keys: keys, redis: configuration, store: store, probe: probe)
            let second = try await IngesterHarness.run([ingester]) {
                try await IngesterHarness.push(before, keys: keys, redis: producer)
                await probe.waitFor(envelopes: 300)
                await first.stop()
                let second = try await OwnRedisServer.start(configuration, directory: directory)
                // The ingester reconnects on its own (its blocked BLMOVE failed when the server went away).
                try await IngesterHarness.push(after, keys: keys, redis: RedisConnection(configuration: configuration))
                await probe.waitFor(envelopes: 600)
                return second
            }
            await second.stop()
            let jobs = try await store.jobs(JobFilter(limit: 1000))
            #expect(jobs.count == 600)
            #expect(Set(jobs.map(\.args)).count == 600)
        }
    }
}
