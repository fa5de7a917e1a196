import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

/// Sidekiq Enterprise's limiters, across worker processes: a paused key and a per-key rate.
@Suite("Throttled keys across processes", .serialized, .timeLimit(.minutes(3)))
struct ThrottledKeyProcessTests {
    private func workers(_ count: Int, url: String, extra: [String: String] = [:]) async throws -> [RunningProcess] {
        // 50 slots each and a 0.2 s poll: light on a two-core machine running every other suite too.
        var env = ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_POLL_INTERVAL": "0.2", "CONVEYOR_CONCURRENCY": "50"]
        env.merge(extra) { _, new in new }
        var workers: [RunningProcess] = []
        for index in 0..<count {
            env["CONVEYOR_WORKER_ID"] = "w\(index)"
            let worker = try RunningProcess(["worker", "--no-ingest", "--grace-period", "5"], environment: env, executable: ConveyorProcess.testWorker)
            await worker.waitFor("worker started")
            workers.append(worker)
        }
        return workers
    }

    private func stop(_ workers: [RunningProcess]) async {
        for worker in workers { worker.signal(SIGTERM) }
        for worker in workers { #expect(await worker.exitStatus() == 0) }
    }

    @Test("a handler's throttle pauses its key on every worker, costs no attempt, other keys run on, and conveyor limits resume releases it")
    func pausedKeyHoldsEveryWorker() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let workers = try await workers(3, url: url)
            // It throttles (for an hour) on its first run only: once resumed, it completes.
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-throttle-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: marker) }
            let throttled = try await store.insert([
                NewJob(kind: "test.throttle", args: #"{"marker": "\#(marker)", "pause_seconds": 3600}"#, limitKey: "meta:act_1")
            ]).inserted[0]
            try await eventually("the key is paused") { try await !store.keyPauses().isEmpty }
            _ = try await store.insert((0..<30).map { _ in NewJob(kind: "conveyor.noop", limitKey: "meta:act_1") })
            _ = try await store.insert((0..<30).map { _ in NewJob(kind: "conveyor.noop", limitKey: "meta:act_2") })

            try await eventually("the other key's jobs completed") {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE limit_key = 'meta:act_2' AND state = 'completed'") == 30
            }
            // Those were inserted after the paused key's: every claim that started them passed these by.
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE limit_key = 'meta:act_1' AND state <> 'available'") == 0,
                    "nothing with the paused key started on any worker")
            let listed = try await ConveyorProcess.run(["limits", "--json"], environment: ["DATABASE_URL": url])
            #expect(listed.stdout.contains(#""key":"meta:act_1""#) && listed.stdout.contains(#""waiting":31"#), "\(listed.stdout)\(listed.stderr)")
            let table = try await ConveyorProcess.run(["limits"], environment: ["DATABASE_URL": url])
            #expect(table.stdout.contains("meta:act_1") && table.stdout.contains("upstream: too many calls"), "\(table.stdout)")

            let resumed = try await ConveyorProcess.run(["limits", "resume", "meta:act_1"], environment: ["DATABASE_URL": url])
            #expect(resumed.stdout.contains("resumed meta:act_1"), "\(resumed.stdout)\(resumed.stderr)")
            try await eventually("every job completed") {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 61
            }
            let job = try await store.require(throttled)
            #expect(job.attempt == 1 && job.errors.isEmpty, "the throttled attempt was not spent: \(job.attempt), \(job.errors)")
            await stop(workers)
        }
    }

    @Test("a rate of 25 starts per 2 s per key holds for 10,000 jobs over 100 keys and three workers, counted from the rows")
    func rateHoldsPerKey() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let jobs = (0..<10_000).map { index in NewJob(kind: "conveyor.noop", limitKey: "acct_\(index % 100)") }
            for chunk in stride(from: 0, to: jobs.count, by: 2000) { _ = try await store.insert(Array(jobs[chunk..<(chunk + 2000)])) }
            let workers = try await workers(
                3, url: url, extra: ["CONVEYOR_LIMITS": #"{"conveyor.noop": {"rate": {"starts": 25, "per_seconds": 2}}}"#])
            try await eventually("every job completed", timeout: .seconds(120)) {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 10_000
            }
            await stop(workers)
            // The claim's clock stamps attempted_at and picks the window: count the starts per key per window.
            let worst = try await TestDatabase.count(client, """
                SELECT coalesce(max(n), 0) FROM (
                    SELECT count(*) AS n FROM conveyor_jobs GROUP BY limit_key, floor(extract(epoch FROM attempted_at) / 2)) w
                """)
            #expect(worst <= 25, "a key started \(worst) jobs within one 2-second window")
            let windows = try await TestDatabase.count(client, "SELECT count(DISTINCT floor(extract(epoch FROM attempted_at) / 2)) FROM conveyor_jobs")
            #expect(windows >= 4, "100 starts per key at 25 per window take at least 4 windows, took \(windows)")
        }
    }
}
