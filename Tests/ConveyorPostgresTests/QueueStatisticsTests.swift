import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

/// The counts behind `conveyor queues`, the dashboard and `conveyor_queue_jobs` (migration 0009's
/// triggers) against the truth: a `GROUP BY` over the table.
@Suite("Queue statistics at scale")
struct QueueStatisticsTests {
    /// Counts per queue and state, straight from the table.
    private func truth(_ client: PostgresClient) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        let rows = try await client.query(
            "SELECT queue, state::text, count(*)::int8 FROM conveyor_jobs GROUP BY queue, state", logger: TestDatabase.logger)
        for try await (queue, state, count) in rows.decode((String, String, Int64).self) { counts["\(queue)/\(state)"] = Int(count) }
        return counts
    }

    private func counted(_ store: PostgresJobStore) async throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try await store.queueStatistics().map { ("\($0.queue)/\($0.state.rawValue)", $0.count) })
    }

    @Test("the kept counts equal a GROUP BY over the table after every kind of change, concurrent ones included")
    func countsFollowEveryChange() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            // Before and after folding the changes into the counts, both must be the truth.
            func check(_ step: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let real = try await truth(client)
                #expect(try await counted(store) == real, "after \(step)", sourceLocation: sourceLocation)
                try await store.foldQueueCounts()
                #expect(try await counted(store) == real, "after \(step), folded", sourceLocation: sourceLocation)
            }
            _ = try await store.insert((0..<60).map { NewJob(kind: "a", queue: $0 % 3 == 0 ? "mail" : "default", maxAttempts: 2) })
            try await check("insert")
            // Duplicates (same id) insert nothing and count nothing.
            let dup = UUID()
            _ = try await store.insert([NewJob(kind: "a", id: dup)])
            _ = try await store.insert([NewJob(kind: "a", id: dup)])
            try await check("a duplicate id")

            let claimed = try await store.claim(limit: 30)
            try await check("claim")
            _ = try await store.heartbeat(claimed.map { ($0.id, $0.attempt) }, lease: .seconds(30))
            try await check("lease renewal")
            let failure = FailureRecord(message: "boom", kind: .error)
            let resolutions: [JobResolution] = [.complete, .retry(after: .seconds(60), failure), .dead(failure), .snooze(.seconds(5)), .cancel(reason: "no"), .release]
            _ = try await store.record(claimed.enumerated().map { ($1.id, $1.attempt, resolutions[$0 % resolutions.count]) })
            try await check("one flush of every resolution")

            _ = try await store.cancel(.queue("mail"), reason: "closing", by: "ops")
            try await check("cancel")
            _ = try await store.retry(.all)
            try await check("retry")
            _ = try await store.discard(.queue("default"), reason: "enough", by: "ops")
            try await check("discard")
            _ = try await store.prune(finishedBefore: Date().addingTimeInterval(60), deadBefore: Date().addingTimeInterval(60))
            try await check("prune")

            // Concurrent writers on the pool's connections (several backends, so several shards).
            _ = try await store.insert((0..<400).map { _ in NewJob(kind: "b", queue: "bulk") })
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        while true {
                            let jobs = try await store.claim(queue: "bulk", limit: 7, worker: "w", lease: .seconds(30))
                            if jobs.isEmpty { return }
                            _ = try await store.complete(jobs.map { ($0.id, $0.attempt) })
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await check("concurrent claims and completions")

            // An operator's own SQL goes through the same triggers.
            try await client.query("UPDATE conveyor_jobs SET queue = 'moved' WHERE queue = 'bulk' AND seq % 2 = 0", logger: TestDatabase.logger)
            try await client.query("DELETE FROM conveyor_jobs WHERE queue = 'moved' AND seq % 3 = 0", logger: TestDatabase.logger)
            try await check("hand-written UPDATE and DELETE")
            _ = try await store.deleteAll(queue: "moved")
            try await check("deleting a queue")
            try await client.query("TRUNCATE conveyor_jobs", logger: TestDatabase.logger)
            #expect(try await store.queueStatistics().isEmpty)
            _ = try await store.insert([NewJob(kind: "a")])
            try await check("truncate, then insert")

            // Repair rebuilds the same numbers.
            try await store.foldQueueCounts()
            try await client.query("UPDATE conveyor_queue_counts SET n = n + 5", logger: TestDatabase.logger)
            try await client.query("SELECT conveyor_recount_queue_counts()", logger: TestDatabase.logger)
            try await check("recount")
        }
    }

    @Test("statistics read no row of the jobs table but one per priority and queue, however many jobs have finished")
    func indexServed() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            // 20,000 finished jobs and a small backlog, written the way the table holds them.
            try await client.query("""
                INSERT INTO conveyor_jobs (id, queue, kind, args, state, max_attempts, attempt, run_at, inserted_at, finished_at)
                SELECT gen_random_uuid(), 'q' || (i % 4), 'k', '{}', (CASE WHEN i % 10 = 0 THEN 'dead' ELSE 'completed' END)::conveyor_job_state, 1, 1, now(), now(), now()
                FROM generate_series(1, 20000) AS i
                """, logger: TestDatabase.logger)
            _ = try await store.insert((0..<40).map { NewJob(kind: "a", queue: "q\($0 % 4)", priority: $0 % 3) })
            try await client.query("VACUUM ANALYZE conveyor_jobs", logger: TestDatabase.logger)
            #expect(try await counted(store) == (try await truth(client)))
            #expect(try await store.foldQueueCounts() > 0)
            #expect(try await store.foldQueueCounts() == 0)

            let plan = try await statisticsPlan(client)
            // A sequential scan, or any node reading more rows of conveyor_jobs than one per probe,
            // would mean the cost grows with the history.
            let scans = plan.nodes.filter { $0["Relation Name"] as? String == "conveyor_jobs" }
            #expect(!scans.isEmpty)
            for scan in scans {
                #expect(scan["Node Type"] as? String != "Seq Scan", "\(scan["Node Type"] ?? "?") on conveyor_jobs")
                let loops = scan["Actual Loops"] as? Int ?? 0
                let rows = (scan["Actual Rows"] as? Double ?? Double(scan["Actual Rows"] as? Int ?? 0)) * Double(loops)
                #expect(rows <= Double(NewJob.priorities.count * 4), "rows read: \(rows)")
                #expect(loops <= NewJob.priorities.count * 4, "probes: \(loops)")
            }
        }
    }

    /// `EXPLAIN (ANALYZE, FORMAT JSON)` of the statistics statement, flattened.
    private func statisticsPlan(_ client: PostgresClient) async throws -> (nodes: [[String: Any]], json: String) {
        var text = ""
        var query = PostgresJobStore.queueStatisticsQuery(now: nil)
        query.sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + query.sql
        let rows = try await client.query(query, logger: TestDatabase.logger)
        for try await line in rows.decode(String.self) { text += line }
        let root = try #require((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])?.first?["Plan"] as? [String: Any])
        var nodes: [[String: Any]] = []
        func walk(_ node: [String: Any]) {
            nodes.append(node)
            for child in node["Plans"] as? [[String: Any]] ?? [] { walk(child) }
        }
        walk(root)
        return (nodes, text)
    }
}
