import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

/// The render farm's cap: at most K running jobs of a kind across every worker process.
@Suite("Cluster-wide concurrency limits across processes", .serialized, .timeLimit(.minutes(3)))
struct ConcurrencyLimitProcessTests {
    @Test("three workers ingesting and claiming never run more than CONVEYOR_LIMITS allows of a kind, while other kinds run freely")
    func neverExceeded() async throws {
        try await TestDatabase.withFresh { client, url in
            let env: [String: String] = [
                "DATABASE_URL": url, "REDIS_URL": try TestRedis.url(), "CONVEYOR_REDIS_NAMESPACE": TestRedis.namespace(),
                "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_POLL_INTERVAL": "0.1", "CONVEYOR_CONCURRENCY": "50",
                "CONVEYOR_LIMITS": #"{"conveyor.sleep": {"concurrency": 3}}"#,
            ]
            var workers: [RunningProcess] = []
            for index in 0..<3 {
                let worker = try RunningProcess(
                    ["worker", "--worker-id", "w\(index)", "--grace-period", "5"], environment: env)
                await worker.waitFor("ingester started")
                await worker.waitFor("limits=conveyor.sleep=3")
                workers.append(worker)
            }
            // Pushed through Redis, so the ingesters' direct starts are exercised too.
            let sleeps = (0..<24).map { _ in #"{"v":1,"kind":"conveyor.sleep","args":{"seconds":0.3}}"# }
            let noops = (0..<200).map { _ in #"{"v":1,"kind":"conveyor.noop"}"# }
            let pushed = try await ConveyorProcess.run(
                ["enqueue", "--stdin"], environment: env, input: (sleeps + noops).shuffled().joined(separator: "\n"))
            #expect(pushed.status == 0, "\(pushed.stderr)")

            try await eventually("every job completed", timeout: .seconds(90)) {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 224
            }
            // From the rows, not by sampling: at each start, how many ran (started at or before it, finished
            // after it). A start is stamped after the finishes it saw, so the count is exact.
            let peak = try await TestDatabase.count(client, """
                SELECT max(c) FROM (
                    SELECT (SELECT count(*) FROM conveyor_jobs o
                            WHERE o.kind = 'conveyor.sleep' AND o.attempted_at <= j.attempted_at AND o.finished_at > j.attempted_at) AS c
                    FROM conveyor_jobs j WHERE j.kind = 'conveyor.sleep') x
                """)
            #expect(peak <= 3, "at most 3 conveyor.sleep jobs ran at once, counted \(peak)")
            let span = try await TestDatabase.count(client, """
                SELECT (extract(epoch FROM max(finished_at) - min(attempted_at)) * 1000)::int8 FROM conveyor_jobs WHERE kind = 'conveyor.sleep'
                """)
            #expect(span >= 2400, "24 sleeps of 0.3 s, 3 at a time, take 2.4 s at least: \(span) ms")
            let listed = try await ConveyorProcess.run(["limits", "--json"], environment: env)
            #expect(listed.stdout.contains(#""concurrency":3"#) && listed.stdout.contains(#""kind":"conveyor.sleep""#), "\(listed.stdout)\(listed.stderr)")
            #expect(listed.stdout.contains(#""running":0"#))
            let table = try await ConveyorProcess.run(["limits"], environment: env)
            #expect(table.stdout.contains("conveyor.sleep") && table.stdout.contains("RUNNING"), "\(table.stdout)")
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers { #expect(await worker.exitStatus() == 0) }
        }
    }

    @Test("a CONVEYOR_LIMITS that does not parse stops the worker with one line naming it")
    func badLimits() async throws {
        for (value, reason) in [
            ("{nope", "not valid JSON"), (#"{"video.render": {"concurrency": 0}}"#, "from 1 to"),
            (#"{"video.render": {"concurency": 4}}"#, "unknown setting"), (#"{"Video Render": {"concurrency": 4}}"#, "not a kind name"),
        ] {
            let result = try await ConveyorProcess.run(
                ["worker", "--no-ingest"], environment: ["DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "CONVEYOR_LIMITS": value])
            #expect(result.status == 78, "\(value): \(result.stderr)")
            #expect(result.stderr.contains("CONVEYOR_LIMITS") && result.stderr.contains(reason), "\(value): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }
}
