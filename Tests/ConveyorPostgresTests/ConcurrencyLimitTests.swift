import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
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
}
