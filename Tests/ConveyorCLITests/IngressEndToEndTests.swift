import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

@Suite("Producers through Redis to a worker process", .timeLimit(.minutes(2)))
struct IngressEndToEndTests {
    /// The worker's environment: its own database and Redis namespace.
    private func environment(url: String) throws -> [String: String] {
        ["DATABASE_URL": url, "REDIS_URL": try TestRedis.url(), "CONVEYOR_REDIS_NAMESPACE": TestRedis.namespace(), "CONVEYOR_LOG_LEVEL": "debug"]
    }

    @Test("the README's Python example enqueues a job that completes, woken by the notification, not the poll")
    func pythonExample() async throws {
        try await TestDatabase.withFresh { client, url in
            let env = try environment(url: url)
            // A poll interval far beyond the test's time limit: only the insert notification can start the job.
            let worker = try RunningProcess(["worker", "--poll-interval", "3600", "--grace-period", "5"], environment: env)
            await worker.waitFor("ingester started")
            await worker.waitFor("worker started")

            let python = try await ConveyorProcess.tool(
                ["python3", TestDatabase.repositoryRoot.appendingPathComponent("examples/enqueue.py").path],
                environment: ProcessInfo.processInfo.environment.merging(env) { _, new in new })
            #expect(python.status == 0, "\(python.stderr)")
            let id = try #require(UUID(uuidString: python.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

            await worker.waitFor("job_id=\(id.uuidString)")
            await worker.waitFor("job completed")
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)
            let job = try await PostgresJobStore(client: client).require(id)
            #expect(job.state == .completed && job.kind == "conveyor.noop" && job.enqueuedAt != nil)
            #expect(job.args.contains("42"))
        }
    }

    @Test("conveyor enqueue pushes to Redis; --stdin pushes many; bad pushes land in conveyor rejected")
    func cliProducers() async throws {
        try await TestDatabase.withFresh { client, url in
            let env = try environment(url: url)
            let worker = try RunningProcess(["worker", "--grace-period", "5"], environment: env)
            await worker.waitFor("ingester started")

            let single = try await ConveyorProcess.run(["enqueue", "conveyor.noop", "--tag", "single"], environment: env)
            #expect(single.status == 0, "\(single.stderr)")
            let id = try #require(UUID(uuidString: single.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

            let lines = (0..<50).map { #"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0)}}"# }.joined(separator: "\n")
            let bulk = try await ConveyorProcess.run(["enqueue", "--stdin"], environment: env, input: lines)
            #expect(bulk.stdout.contains("pushed 50 envelopes"), "\(bulk.stderr)")

            let invalid = try await ConveyorProcess.run(["enqueue", "--stdin"], environment: env, input: "{\"v\":1,\"kind\":\"a\"}\nnope\n")
            #expect(invalid.status == 78 && invalid.stderr.contains("stdin line 2"))

            // A producer that skips validation: redis-cli LPUSH of garbage.
            let ingress = env["CONVEYOR_REDIS_NAMESPACE"]! + ":ingress"
            let redis = try TestRedis.configuration()
            let cli = try await ConveyorProcess.tool(
                ["redis-cli", "-h", redis.host, "-p", String(redis.port), "LPUSH", ingress, #"{"v":1,"kind":"conveyor.noop","priority":99}"#],
                environment: ProcessInfo.processInfo.environment)
            #expect(cli.status == 0)

            await worker.waitFor("envelope quarantined")
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)

            let store = PostgresJobStore(client: client)
            #expect(try await store.require(id).tags == ["single"])
            #expect(try await store.jobs(JobFilter(limit: 100)).count == 51)
            let listed = try await ConveyorProcess.run(["rejected", "list", "--json"], environment: env)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])
            #expect((object["reason"] as? String)?.contains("priority 99 must be between 0 and 9") == true)
            #expect((object["payload"] as? String)?.contains("\"priority\":99") == true)
            let purged = try await ConveyorProcess.run(["rejected", "purge", "--all"], environment: env)
            #expect(purged.stdout == "purged 1 envelope\n")
        }
    }
}
