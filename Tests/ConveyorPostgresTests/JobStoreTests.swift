import ConveyorCore
@testable import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Synchronization
import Testing

@Suite("Job store")
struct JobStoreTests {
    @Test("inserts a batch in one statement and drops repeated ids")
    func insertAndDeduplicateIDs() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let id = UUID()
            let first = try await store.insert([NewJob(kind: "a", id: id), NewJob(kind: "b")])
            #expect(first.inserted.count == 2 && first.duplicates == 0)
            let again = try await store.insert([NewJob(kind: "a", id: id), NewJob(kind: "a", id: id)])
            #expect(again.inserted.isEmpty && again.duplicates == 2)
            let job = try await store.require(id)
            #expect(job.state == .available && job.maxAttempts == 25 && job.attempt == 0 && job.args == "{}")
        }
    }

    @Test("ingest writes each id once: repeated within a batch, already ingested, a recovered batch replayed, with rejections")
    func ingestDuplicates() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let maxAttempts: @Sendable (String) -> Int = { _ in 3 }
            let (a, b, c, d) = (UUID(), UUID(), UUID(), UUID())
            let rejection = Rejection(id: UUID(), payload: Data("{".utf8), reason: "envelope is not valid JSON", source: "test")
            let counts = { (result: PostgresJobStore.IngestResult) in [result.inserted, result.duplicates, result.quarantined] }

            let first = try await store.ingest(jobs: [NewJob(kind: "k", id: a), NewJob(kind: "k", id: b)], rejected: [], maxAttempts: maxAttempts)
            #expect(counts(first) == [2, 0, 0])
            // `a` is already in: the conflict-free insert fails as a whole, the batch is written again without it.
            let batch = [NewJob(kind: "k", id: a), NewJob(kind: "k", id: c)]
            let second = try await store.ingest(jobs: batch, rejected: [rejection], maxAttempts: maxAttempts)
            #expect(counts(second) == [1, 1, 1])
            let replayed = try await store.ingest(jobs: batch, rejected: [rejection], maxAttempts: maxAttempts)
            #expect(counts(replayed) == [0, 2, 0])
            let repeated = try await store.ingest(jobs: [NewJob(kind: "k", id: d), NewJob(kind: "k", id: d)], rejected: [], maxAttempts: maxAttempts)
            #expect(counts(repeated) == [1, 1, 0])
            let keyed = try await store.ingest(
                jobs: [NewJob(kind: "k", uniqueKey: "u"), NewJob(kind: "k", uniqueKey: "u")], rejected: [], maxAttempts: maxAttempts)
            #expect(counts(keyed) == [1, 1, 0])

            #expect(try await store.jobs(JobFilter(limit: 100)).count == 5)
            #expect(try await store.rejectedEnvelopes().count == 1)
            // Any other refusal is still a store error, and writes nothing.
            await #expect(throws: ConveyorStoreError.self) {
                try await store.ingest(jobs: [NewJob(kind: "k", priority: 12)], rejected: [], maxAttempts: maxAttempts)
            }
            #expect(try await store.jobs(JobFilter(limit: 100)).count == 5)
        }
    }

    @Test("direct start: requested rows go in running, leased, attempt 1 — unless their queue has a due job waiting, is paused, or the row is not due")
    func directStart() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let maxAttempts: @Sendable (String) -> Int = { _ in 3 }
            let start = { (rows: [Int]) in PostgresJobStore.StartRequest(rows: rows, worker: "w1", lease: .seconds(30)) }
            let ids = (0..<4).map { _ in UUID() }

            let first = try await store.ingest(
                jobs: ids.map { NewJob(kind: "k", args: #"{"n":1}"#, queue: "q", id: $0) }, rejected: [], maxAttempts: maxAttempts, start: start([0, 2]))
            #expect(first.inserted == 4 && first.started.map(\.id) == [ids[0], ids[2]])
            #expect(first.started.allSatisfy { $0.attempt == 1 && $0.maxAttempts == 3 && $0.kind == "k" && $0.args == #"{"n": 1}"# })
            let started = try await store.require(ids[0])
            #expect(started.state == .running && started.attempt == 1 && started.lockedBy == "w1")
            #expect(started.leaseExpiresAt == clock.now().addingTimeInterval(30) && started.attemptedAt == clock.now())
            #expect(try await store.require(ids[1]).state == .available)

            // Jobs 1 and 3 wait in `q`: a new one must not overtake them.
            let behind = try await store.ingest(jobs: [NewJob(kind: "k", queue: "q")], rejected: [], maxAttempts: maxAttempts, start: start([0]))
            #expect(behind.inserted == 1 && behind.started.isEmpty)
            // Another queue is free; a job not due yet is not started.
            let other = try await store.ingest(
                jobs: [NewJob(kind: "k", queue: "r"), NewJob(kind: "k", queue: "r", runAt: clock.now().addingTimeInterval(5))], rejected: [],
                maxAttempts: maxAttempts, start: start([0, 1]))
            #expect(other.started.map(\.queue) == ["r"])
            // A paused queue starts nothing.
            #expect(try await store.pause(queue: "s", by: "test"))
            let paused = try await store.ingest(jobs: [NewJob(kind: "k", queue: "s")], rejected: [], maxAttempts: maxAttempts, start: start([0]))
            #expect(paused.started.isEmpty)
            // The recovered-batch path (ids already in) starts only the rows it inserts.
            let replay = try await store.ingest(
                jobs: [NewJob(kind: "k", queue: "t", id: ids[0]), NewJob(kind: "k", queue: "t")], rejected: [], maxAttempts: maxAttempts,
                start: start([0, 1]))
            #expect(replay.inserted == 1 && replay.duplicates == 1 && replay.started.count == 1 && replay.started.first?.id != ids[0])
            // Started jobs complete like claimed ones.
            #expect(try await store.complete(first.started.map { (id: $0.id, attempt: $0.attempt) }).count == 2)
        }
    }

    @Test("claims and direct starts report how long each job was due before it started, by the database's clock")
    func waited() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let start = clock.now()
            let ids = try await store.insert([
                NewJob(kind: "k", runAt: start.addingTimeInterval(-30)), NewJob(kind: "k"), NewJob(kind: "k", runAt: start.addingTimeInterval(2)),
            ]).inserted
            clock.advance(by: 2.5)
            let claimed = Dictionary(uniqueKeysWithValues: try await store.claim(queue: "default", limit: 10, worker: "w", lease: .seconds(30)).map { ($0.id, $0.waited) })
            #expect(claimed == [ids[0]: .seconds(32.5), ids[1]: .seconds(2.5), ids[2]: .seconds(0.5)])

            let started = try await store.ingest(
                jobs: [NewJob(kind: "k", queue: "direct"), NewJob(kind: "k", queue: "direct", runAt: clock.now().addingTimeInterval(-7))], rejected: [],
                maxAttempts: { _ in 3 }, start: .init(rows: [0, 1], worker: "w", lease: .seconds(30)))
            #expect(started.started.map(\.waited) == [.zero, .seconds(7)])
        }
    }

    @Test("a unique key blocks a second job only while the first is unfinished")
    func uniqueKey() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let first = try await store.insert([NewJob(kind: "a", uniqueKey: "k")])
            #expect(first.inserted.count == 1)
            #expect(try await store.insert([NewJob(kind: "a", uniqueKey: "k")]).duplicates == 1)
            let claimed = try await store.claim()
            try await store.complete(claimed.map { (id: $0.id, attempt: $0.attempt) })
            #expect(try await store.insert([NewJob(kind: "a", uniqueKey: "k")]).inserted.count == 1)
        }
    }

    @Test("stores every envelope field")
    func fields() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let runAt = clock.now().addingTimeInterval(60)
            let enqueuedAt = clock.now().addingTimeInterval(-2)
            let id = UUID()
            _ = try await store.insert([
                NewJob(
                    kind: "ml.retrain", args: #"{"model":"ctr"}"#, queue: "ml", priority: 2, runAt: runAt, maxAttempts: 3,
                    uniqueKey: "retrain-ctr", tags: ["ml", "daily"], id: id, enqueuedAt: enqueuedAt)
            ])
            let job = try await store.require(id)
            #expect(job.kind == "ml.retrain" && job.queue == "ml" && job.priority == 2 && job.maxAttempts == 3)
            #expect(job.args == #"{"model": "ctr"}"#)
            #expect(job.runAt == runAt && job.enqueuedAt == enqueuedAt && job.insertedAt == clock.now())
            #expect(job.uniqueKey == "retrain-ctr" && job.tags == ["ml", "daily"])
        }
    }

    @Test("claims due jobs by priority, then run_at, then insertion order, up to the limit")
    func claimOrder() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let now = clock.now()
            let late = NewJob(kind: "late", priority: 5, runAt: now.addingTimeInterval(-10))
            let early = NewJob(kind: "early", priority: 5, runAt: now.addingTimeInterval(-20))
            let urgent = NewJob(kind: "urgent", priority: 0)
            let second = NewJob(kind: "second", priority: 5, runAt: now.addingTimeInterval(-10))
            let future = NewJob(kind: "future", priority: 0, runAt: now.addingTimeInterval(30))
            let other = NewJob(kind: "other", queue: "other", priority: 0)
            _ = try await store.insert([late, early, urgent, second, future, other])
            let firstTwo = try await store.claim(limit: 2)
            #expect(Set(firstTwo.map(\.kind)) == ["urgent", "early"])
            let rest = try await store.claim(limit: 10)
            #expect(Set(rest.map(\.kind)) == ["late", "second"])
            #expect(try await store.claim(limit: 10).isEmpty)
            clock.advance(by: 30)
            #expect(try await store.claim(limit: 10).map(\.kind) == ["future"])
            let running = try await store.require(firstTwo[0].id)
            #expect(running.state == .running && running.attempt == 1 && running.lockedBy == "w1")
        }
    }

    @Test("claim order within equal priority and run_at follows insertion")
    func insertionOrder() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let jobs = (0..<20).map { NewJob(kind: "k\($0)", runAt: clock.now()) }
            _ = try await store.insert(jobs)
            var order: [String] = []
            for _ in 0..<20 { order += try await store.claim(limit: 1).map(\.kind) }
            #expect(order == jobs.map(\.kind))
        }
    }

    @Test("concurrent claimers never take the same job")
    func exclusiveClaims() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let jobs = (0..<3000).map { _ in NewJob(kind: "conveyor.noop") }
            for chunk in stride(from: 0, to: jobs.count, by: 1000) {
                _ = try await store.insert(Array(jobs[chunk..<chunk + 1000]))
            }
            let claimed = try await withThrowingTaskGroup(of: [UUID].self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        var mine: [UUID] = []
                        while true {
                            let batch = try await store.claim(queue: "default", limit: 37, worker: "w\(worker)", lease: .seconds(60))
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.id)
                        }
                    }
                }
                return try await group.reduce(into: [UUID]()) { $0 += $1 }
            }
            #expect(claimed.count == 3000)
            #expect(Set(claimed) == Set(jobs.map(\.id)))
        }
    }

    @Test("a stale attempt cannot complete or fail a job that was claimed again")
    func fencing() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert([NewJob(kind: "a")])
            let first = try #require(try await store.claim().first)
            // The first worker vanished; the job was released and claimed again at attempt 2.
            try await store.resolve([(id: first.id, attempt: first.attempt, resolution: .release)])
            try await client.query("UPDATE conveyor_jobs SET attempt = attempt + 1", logger: TestDatabase.logger)
            let second = try #require(try await store.claim().first)
            #expect(second.attempt == 2)
            #expect(try await store.complete([(id: first.id, attempt: first.attempt)]).isEmpty)
            let failure = FailureRecord(message: "late", kind: .error)
            #expect(try await store.resolve([(id: first.id, attempt: first.attempt, resolution: .dead(failure))]).isEmpty)
            #expect(try await store.require(first.id).state == .running)
            #expect(try await store.complete([(id: second.id, attempt: 2)]) == [second.id])
            #expect(try await store.require(first.id).state == .completed)
        }
    }

    @Test("a failure is recorded with message, attempt, time and kind, and reschedules by the backoff")
    func retrySchedule() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            _ = try await store.insert([NewJob(kind: "a", maxAttempts: 3)])
            let policy = RetryPolicy.standard
            let random = SeededRandomSource(seed: 7)
            let expectedRandom = SeededRandomSource(seed: 7)
            var id = UUID()
            for attempt in 1...3 {
                let job = try #require(try await store.claim().first)
                id = job.id
                #expect(job.attempt == attempt)
                let failedAt = clock.now()
                let resolution = JobResolution.resolve(
                    .failed(message: "boom \(attempt)", kind: .error), attempt: job.attempt, maxAttempts: job.maxAttempts,
                    policy: policy, random: random)
                try await store.resolve([(id: job.id, attempt: job.attempt, resolution: resolution)])
                let record = try await store.require(job.id)
                #expect(record.errors.count == attempt)
                #expect(record.errors.last == JobAttemptError(attempt: attempt, at: failedAt, message: "boom \(attempt)", kind: .error))
                if attempt < 3 {
                    let delay = RetryPolicy.polynomialBackoff(attempt: attempt, random: expectedRandom.nextUnit())
                    #expect(record.state == .available)
                    #expect(record.runAt == failedAt.addingTimeInterval(delay.seconds))
                    // Not due a second early; due exactly at run_at.
                    clock.advance(by: delay.seconds - 1)
                    #expect(try await store.claim().isEmpty)
                    clock.advance(by: 1)
                } else {
                    #expect(record.state == .dead && record.finishedAt == failedAt)
                }
            }
            #expect(try await store.require(id).attempt == 3)
        }
    }

    @Test("snooze and shutdown release give the attempt back; cancel records the reason")
    func refunds() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let ids = try await store.insert([NewJob(kind: "s"), NewJob(kind: "r"), NewJob(kind: "c")]).inserted
            let jobs = try await store.claim()
            let byKind = Dictionary(uniqueKeysWithValues: jobs.map { ($0.kind, $0) })
            try await store.resolve([
                (id: byKind["s"]!.id, attempt: 1, resolution: .snooze(.seconds(90))),
                (id: byKind["r"]!.id, attempt: 1, resolution: .release),
                (id: byKind["c"]!.id, attempt: 1, resolution: .cancel(reason: "campaign deleted")),
            ])
            let snoozed = try await store.require(byKind["s"]!.id)
            #expect(snoozed.state == .available && snoozed.attempt == 0 && snoozed.errors.isEmpty)
            #expect(snoozed.runAt == clock.now().addingTimeInterval(90))
            let released = try await store.require(byKind["r"]!.id)
            #expect(released.state == .available && released.attempt == 0 && released.runAt == clock.now())
            let cancelled = try await store.require(byKind["c"]!.id)
            #expect(cancelled.state == .cancelled && cancelled.cancelReason == "campaign deleted" && cancelled.finishedAt == clock.now())
            #expect(ids.count == 3)
        }
    }
}

/// Plans of the statements that write rows they picked in a subquery.
@Suite("Plans that do not hinge on estimates")
struct PickedRowPlanTests {
    @Test("a claim and a prune write the rows they picked by primary key, not through a join the planner may turn into a table scan")
    func noTableScan() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            for _ in 0..<5 { _ = try await store.insert((0..<1000).map { _ in NewJob(kind: "k", queue: "burst") }) }
            let statements = [
                JobClaimBatch.query(queue: "burst", limit: 400, worker: "w", lease: .seconds(30), now: nil),
                JobPrune.query(finishedBefore: Date(), deadBefore: Date(), limit: 1000),
            ]
            // Joined to the picked rows, these statements were hash-joined against a scan of the whole
            // table whenever the planner expected many picked rows on a table it thought small (seen after
            // a burst on a table last analyzed while empty). Without nested loops, that is the join it takes.
            try await client.withConnection { connection in
                try await connection.query("SET enable_nestloop = off", logger: TestDatabase.logger)
                for statement in statements {
                    let plan = try await Self.plan(of: statement, on: connection)
                    #expect(!plan.contains("Seq Scan on conveyor_jobs"), "\(plan)")
                }
            }
        }
    }

    @Test("a direct start looks for waiting jobs on the claim index, not by scanning the table")
    func directStartGuard() async throws {
        try await TestDatabase.withFresh { client, _ in
            // The benchmark's state: statistics taken during a burst of waiting jobs (every row
            // `available`), the table emptied and vacuumed since (no pages), the next burst being run.
            // The planner expects thousands of matches and finds a table scan the cheapest way to one.
            let sql: [PostgresQuery] = [
                "INSERT INTO conveyor_jobs (id, queue, kind, max_attempts, run_at, inserted_at) SELECT gen_random_uuid(), 'burst', 'k', 3, now(), now() FROM generate_series(1, 40000)",
                "ANALYZE conveyor_jobs",
                "DELETE FROM conveyor_jobs",
                "VACUUM conveyor_jobs",
                "INSERT INTO conveyor_jobs (id, queue, kind, max_attempts, run_at, inserted_at, state) SELECT gen_random_uuid(), 'burst', 'k', 3, now(), now(), 'completed' FROM generate_series(1, 20000)",
            ]
            for statement in sql { _ = try await client.query(statement, logger: TestDatabase.logger).collect() }
            let statement = JobInsertMany.query(
                [NewJob(kind: "k", queue: "burst")], maxAttempts: { _ in 3 }, now: nil,
                start: .init(rows: [0], worker: "w", lease: .seconds(30)))
            let plan = try await client.withConnection { try await Self.plan(of: statement, on: $0) }
            #expect(!plan.contains("Seq Scan on conveyor_jobs"), "\(plan)")
        }
    }

    /// `EXPLAIN` of `statement`, one line per plan node.
    static func plan(of statement: PostgresQuery, on connection: PostgresConnection) async throws -> String {
        var explain = statement
        explain.sql = "EXPLAIN " + statement.sql
        var lines: [String] = []
        for try await line in try await connection.query(explain, logger: TestDatabase.logger).decode(String.self) { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}
