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
            let limits = ["render": 2]
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

    @Test("claims racing on several connections never start more than the limit")
    func racingClaims() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert((0..<200).map { _ in NewJob(kind: "render") })
            let claimed = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        try await store.claim(queue: "default", limit: 10, worker: "w\(worker)", lease: .seconds(30), limits: ["render": 7]).count
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(claimed == 7)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'running'") == 7)
        }
    }
}
