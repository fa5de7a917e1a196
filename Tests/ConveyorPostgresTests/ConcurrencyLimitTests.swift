import ConveyorCore
@testable import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Cluster-wide concurrency limits (store, manual clock)")
struct ConcurrencyLimitTests {
    @Test("a limited kind starts only while fewer than its limit run; completion, failure, snooze, rescue and release free the room; other kinds are not held back")
    func roomIsFreedByEveryExit() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let limits = ["render": KindLimit(concurrency: 2)]
            func claim(_ worker: String, limit: Int = 100) async throws -> [ClaimedJob] {
                try await store.claim(queue: "default", limit: limit, worker: worker, lease: .seconds(30), limits: limits)
            }
            _ = try await store.insert((0..<8).map { _ in NewJob(kind: "render") })
            _ = try await store.insert((0..<5).map { _ in NewJob(kind: "other") })
            // Other queues' running jobs of the kind count too: the limit is per kind, cluster-wide.
            _ = try await store.insert([NewJob(kind: "render", queue: "elsewhere")])
            let elsewhere = try await store.claim(queue: "elsewhere", limit: 10, worker: "w0", lease: .seconds(30), limits: limits)
            #expect(elsewhere.count == 1)

            let first = try await claim("w1")
            #expect(first.filter { $0.kind == "render" }.count == 1, "one of two slots was taken in another queue")
            #expect(first.filter { $0.kind == "other" }.count == 5, "unlimited kinds start regardless")
            #expect(try await claim("w2").isEmpty)

            // Completion frees a slot.
            try await store.complete([(id: elsewhere[0].id, attempt: 1)])
            let second = try await claim("w2")
            #expect(second.map(\.kind) == ["render"])
            #expect(try await claim("w3").isEmpty)

            // A retry (failure) frees it; the retried job waits out its backoff, a sibling starts.
            try await store.resolve([(id: second[0].id, attempt: 1, resolution: .retry(after: .seconds(600), FailureRecord(message: "boom", kind: .error)))])
            let third = try await claim("w3")
            #expect(third.count == 1 && third[0].id != second[0].id)

            // A snooze frees it.
            try await store.resolve([(id: third[0].id, attempt: 1, resolution: .snooze(.seconds(600)))])
            let fourth = try await claim("w4")
            #expect(fourth.count == 1)

            // Giving a job back at shutdown frees it.
            try await store.resolve([(id: fourth[0].id, attempt: 1, resolution: .release)])
            let fifth = try await claim("w5", limit: 1)
            #expect(fifth.count == 1)

            // An expired lease holds the slot until it is rescued: the limit is never exceeded.
            clock.advance(by: 31)
            #expect(try await claim("w6").isEmpty, "expired but not rescued: still counted")
            let rescued = try await store.rescueExpired()
            #expect(rescued.retried.count == 2 + 5, "both running renders and the five others")
            clock.advance(by: 3600)
            let afterRescue = try await claim("w6")
            #expect(afterRescue.filter { $0.kind == "render" }.count == 2)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'render' AND state = 'running'") == 2)
        }
    }

    @Test("a throttled job pauses its key: no sibling starts before the time, its attempt is not spent, the longer pause wins, and resuming releases them")
    func throttledKey() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let first = try await store.insert([NewJob(kind: "ads", priority: 0, limitKey: "meta:act_1")]).inserted[0]
            let claimed = try await store.claim(queue: "default", limit: 1, worker: "w1", lease: .seconds(30))
            #expect(claimed.map(\.id) == [first] && claimed[0].limitKey == "meta:act_1")
            _ = try await store.insert((0..<3).map { _ in NewJob(kind: "ads", limitKey: "meta:act_1") })
            let other = try await store.insert([NewJob(kind: "ads", limitKey: "meta:act_2")]).inserted[0]
            let plain = try await store.insert([NewJob(kind: "ads")]).inserted[0]

            let until = clock.now().addingTimeInterval(20 * 60)
            let written = try await store.resolve([(id: first, attempt: 1, resolution: .throttle(key: "meta:act_1", until: until, reason: "code 17: too many calls"))])
            #expect(written == [first])
            let held = try await store.require(first)
            #expect(held.state == .available && held.attempt == 0 && held.errors.isEmpty, "the attempt is given back, nothing is recorded as a failure")
            let pauses = try await store.keyPauses()
            #expect(pauses.map(\.key) == ["meta:act_1"] && pauses[0].until == until && pauses[0].waiting == 4)
            #expect(pauses[0].reason == "code 17: too many calls" && pauses[0].pausedBy == "job \(first.uuidString.lowercased())")

            // Only the other key and the keyless job start, however often the workers claim.
            let next = try await store.claim(queue: "default", limit: 100, worker: "w2", lease: .seconds(30))
            #expect(Set(next.map(\.id)) == [other, plain])
            clock.advance(by: 19 * 60)
            #expect(try await store.claim(queue: "default", limit: 100, worker: "w2", lease: .seconds(30)).isEmpty)
            // A shorter pause does not cut a longer one short.
            #expect(try await store.pause(key: "meta:act_1", until: clock.now().addingTimeInterval(1), reason: "shorter", by: "op") == false)
            clock.advance(by: 60)
            let after = try await store.claim(queue: "default", limit: 100, worker: "w3", lease: .seconds(30))
            #expect(after.count == 4 && after.contains { $0.id == first && $0.attempt == 1 }, "at the time, all four start; the throttled one at attempt 1 again")
            #expect(try await store.keyPauses().isEmpty)
            #expect(try await store.pruneLimitState() == 1)

            // An operator's pause, lifted by resume: the waiting jobs start at once.
            _ = try await store.insert([NewJob(kind: "ads", limitKey: "meta:act_3")])
            #expect(try await store.pause(key: "meta:act_3", until: clock.now().addingTimeInterval(3600), reason: "maintenance", by: "op"))
            #expect(try await store.claim(queue: "default", limit: 100, worker: "w4", lease: .seconds(30)).isEmpty)
            #expect(try await store.resume(key: "meta:act_3"))
            #expect(try await store.resume(key: "meta:act_3") == false)
            #expect(try await store.claim(queue: "default", limit: 100, worker: "w4", lease: .seconds(30)).count == 1)
        }
    }

    @Test("a rate limit starts at most N per window for each key, counts every claim, and opens again in the next window")
    func rateLimit() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
            let store = PostgresJobStore(client: client, clock: clock)
            let limits = ["ads": KindLimit(rate: RateLimit(starts: 3, per: .seconds(60)))]
            func claim(_ limit: Int = 100) async throws -> [ClaimedJob] {
                try await store.claim(queue: "default", limit: limit, worker: "w", lease: .seconds(3600), limits: limits)
            }
            _ = try await store.insert((0..<10).map { _ in NewJob(kind: "ads", limitKey: "a") })
            _ = try await store.insert((0..<10).map { _ in NewJob(kind: "ads", limitKey: "b") })
            _ = try await store.insert((0..<2).map { _ in NewJob(kind: "ads") })
            _ = try await store.insert((0..<5).map { _ in NewJob(kind: "other", limitKey: "a") })
            let first = try await claim(2)
            #expect(first.count == 2)
            let rest = try await claim()
            let started = first + rest
            #expect(started.filter { $0.kind == "ads" && $0.limitKey == "a" }.count == 3)
            #expect(started.filter { $0.kind == "ads" && $0.limitKey == "b" }.count == 3)
            #expect(started.filter { $0.kind == "ads" && $0.limitKey == nil }.count == 2, "jobs without a key are not rate-limited")
            #expect(started.filter { $0.kind == "other" }.count == 5, "the rate is the kind's: another kind on the same key is free")
            #expect(try await claim().isEmpty, "both keys spent for this window")
            clock.advance(by: 59.9)
            #expect(try await claim().isEmpty)
            clock.advance(by: 0.1)
            #expect(try await claim().count == 6, "a new window")
            clock.advance(by: 3600)
            #expect(try await store.pruneLimitState() == 4, "the two closed windows of each key")
        }
    }

    @Test("claims racing on several connections never start more than the limit")
    func racingClaims() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert((0..<200).map { _ in NewJob(kind: "render") })
            let claimed = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        try await store.claim(queue: "default", limit: 10, worker: "w\(worker)", lease: .seconds(30), limits: ["render": KindLimit(concurrency: 7)]).count
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(claimed == 7)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'running'") == 7)
        }
    }

    @Test(
        "a queue where no limited job waits is claimed without the limits' locks, and that claim leaves limited kinds waiting",
        .timeLimit(.minutes(1)))
    func noLockWithoutLimitedJobs() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let limits = ["render": KindLimit(concurrency: 2)]
            _ = try await store.insert((0..<3).map { _ in NewJob(kind: "other") })
            _ = try await store.insert([NewJob(kind: "render", queue: "renders")])
            // Another session holds the render lock (as a claim of renders in progress would): a claim
            // of the default queue, where no render waits, does not wait for it. Before the probe it
            // did, on every claim, and the test hangs until its time limit.
            try await client.withConnection { holder in
                _ = try await holder.query("BEGIN", logger: TestDatabase.logger).collect()
                _ = try await holder.query(JobClaimBatch.lockQuery(kinds: ["render"]), logger: TestDatabase.logger).collect()
                let claimed = try await store.claim(queue: "default", limit: 10, worker: "w", lease: .seconds(30), limits: limits)
                #expect(claimed.map(\.kind) == ["other", "other", "other"])
                _ = try await holder.query("COMMIT", logger: TestDatabase.logger).collect()
            }
            // The lock-free claim skips limited kinds: one that arrives after the probe waits for a
            // locked claim, which counts it.
            let plain = JobClaimBatch.query(queue: "renders", limit: 10, worker: "w", lease: .seconds(30), excluding: ["render"], now: nil)
            #expect(try await client.query(plain, logger: TestDatabase.logger).collect().isEmpty)
            let probe = JobClaimBatch.waitingQuery(queue: "renders", kinds: ["render", "encode"], now: nil)
            var waiting: [String] = []
            for try await kind in try await client.query(probe, logger: TestDatabase.logger).decode(String.self) { waiting.append(kind) }
            #expect(waiting == ["render"])
            let renders = try await store.claim(queue: "renders", limit: 10, worker: "w", lease: .seconds(30), limits: limits)
            #expect(renders.map(\.kind) == ["render"])
        }
    }

    @Test("the probe and a limited claim read a kind's due jobs on the kind's claim index, not the whole queue's")
    func limitedKindsOnTheirIndex() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            for _ in 0..<5 { _ = try await store.insert((0..<1000).map { _ in NewJob(kind: "other") }) }
            _ = try await store.insert([NewJob(kind: "render")])
            _ = try await client.query("ANALYZE conveyor_jobs", logger: TestDatabase.logger).collect()
            let statements = [
                JobClaimBatch.waitingQuery(queue: "default", kinds: ["render"], now: nil),
                JobClaimBatch.limitedQuery(
                    queue: "default", limit: 100, worker: "w", lease: .seconds(30), limits: [(kind: "render", limit: KindLimit(concurrency: 2))], now: nil),
            ]
            for statement in statements {
                var explain = statement
                explain.sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement.sql
                var plan = ""
                for try await line in try await client.query(explain, logger: TestDatabase.logger).decode(String.self) { plan += line }
                #expect(plan.contains("conveyor_jobs_kind_claim_idx"), "\(plan)")
                // Reading the queue's claim index for the one render read all 5,000 other jobs' entries.
                let read = Self.rowsRead(inPlan: plan, index: "conveyor_jobs_claim_idx")
                #expect(read <= 200, "\(read) entries of the queue's claim index read for one render")
            }
        }
    }

    /// Rows the plan's scans on `index` returned, summed over their loops.
    static func rowsRead(inPlan json: String, index: String) -> Int {
        guard let data = json.data(using: .utf8), let root = try? JSONSerialization.jsonObject(with: data) else { return -1 }
        func walk(_ node: Any) -> Int {
            var total = 0
            if let object = node as? [String: Any] {
                if object["Index Name"] as? String == index {
                    total += ((object["Actual Rows"] as? Int) ?? 0) * ((object["Actual Loops"] as? Int) ?? 1)
                }
                for value in object.values { total += walk(value) }
            } else if let array = node as? [Any] {
                for value in array { total += walk(value) }
            }
            return total
        }
        return walk(root)
    }
}
