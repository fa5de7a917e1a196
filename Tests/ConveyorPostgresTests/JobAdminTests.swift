import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Job administration")
struct JobAdminTests {
    /// Inserts jobs of the given kinds and sends them all to `dead` after one attempt.
    private func deadJobs(_ kinds: [String], store: PostgresJobStore) async throws -> [UUID] {
        let ids = try await store.insert(kinds.map { NewJob(kind: $0, queue: "graveyard", maxAttempts: 1) }).inserted
        let claimed = try await store.claim("graveyard")
        try await store.resolve(claimed.map {
            (id: $0.id, attempt: $0.attempt, resolution: .dead(FailureRecord(message: "boom", kind: .error)))
        })
        return ids
    }

    @Test("lists with state, kind and queue filters, newest first, paged")
    func listing() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert((0..<5).map { NewJob(kind: "a", queue: $0 < 3 ? "default" : "mail") })
            _ = try await deadJobs(["b"], store: store)
            #expect(try await store.jobs(JobFilter(state: .dead)).map(\.kind) == ["b"])
            #expect(try await store.jobs(JobFilter(queue: "mail")).count == 2)
            #expect(try await store.jobs(JobFilter(queue: "graveyard")).map(\.state) == [.dead])
            #expect(try await store.jobs(JobFilter(kind: "a", limit: 2)).count == 2)
            let all = try await store.jobs()
            #expect(all.count == 6 && all.first?.kind == "b")
            // Paging: the next page starts below the last seq seen.
            let first = try await store.jobs(JobFilter(limit: 4))
            let next = try await store.jobs(JobFilter(beforeSeq: first.last!.seq, limit: 4))
            #expect(first.map(\.id) + next.map(\.id) == all.map(\.id))
        }
    }

    @Test("jobs of every state interleaved list newest first, page across states, and filter by each state")
    func listingAcrossStates() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            // Seven rounds of one job per state, so the states interleave in insertion order.
            var expected: [UUID] = []
            var byState: [JobState: [UUID]] = [:]
            for round in 0..<7 {
                let ids = try await store.insert((0..<5).map { _ in NewJob(kind: "k\(round)", queue: "q\(round)", maxAttempts: 1) }).inserted
                let claimed = try await store.claim(queue: "q\(round)", limit: 4, worker: "w", lease: .seconds(60))
                let attempt = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0.attempt) })
                _ = try await store.complete([(ids[0], attempt[ids[0]]!)])
                _ = try await store.resolve([
                    (ids[1], attempt[ids[1]]!, .cancel(reason: "no")),
                    (ids[2], attempt[ids[2]]!, .dead(FailureRecord(message: "x", kind: .error))),
                ])
                for (state, id) in zip([JobState.completed, .cancelled, .dead, .running, .available], ids) { byState[state, default: []].append(id) }
                expected += ids
            }
            expected.reverse()
            #expect(try await store.jobs(JobFilter(limit: 100)).map(\.id) == expected)
            var paged: [UUID] = []
            var before: Int?
            while true {
                let page = try await store.jobs(JobFilter(beforeSeq: before, limit: 4))
                guard let last = page.last else { break }
                paged += page.map(\.id)
                before = last.seq
            }
            #expect(paged == expected)
            for (state, ids) in byState {
                #expect(try await store.jobs(JobFilter(state: state, limit: 100)).map(\.id) == ids.reversed(), "\(state)")
                let page = try await store.jobs(JobFilter(state: state, kind: "k3", limit: 100))
                #expect(page.map(\.id) == [ids[3]] && page.allSatisfy { $0.state == state }, "\(state)")
            }
            #expect(try await store.jobs(JobFilter(kind: "k6", limit: 3)).map(\.id) == Array(expected.prefix(3)))
        }
    }

    @Test("retrying dead jobs by id, by kind or all gives each another attempt")
    func retry() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let ids = try await deadJobs(["a", "a", "b", "c"], store: store)
            #expect(try await store.retry(.ids([ids[3]])) == [ids[3]])
            #expect(Set(try await store.retry(.kind("a"))) == [ids[0], ids[1]])
            #expect(try await store.retry(.all) == [ids[2]])
            for id in ids {
                let job = try await store.require(id)
                #expect(job.state == .available && job.maxAttempts == 2 && job.attempt == 1 && job.errors.count == 1)
            }
            // They really run again.
            #expect(try await store.claim("graveyard").count == 4)
        }
    }

    @Test("retry all with dead jobs sharing a unique key retries the newest, skips a key still held, and fails nothing")
    func retryUniqueKeys() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            // Three generations of the same nightly job died, one after the other; one job of another key
            // died while its successor is already waiting.
            var nightly: [UUID] = []
            for _ in 0..<3 {
                nightly += try await store.insert([NewJob(kind: "a", queue: "graveyard", maxAttempts: 1, uniqueKey: "nightly")]).inserted
                let claimed = try await store.claim("graveyard")
                try await store.resolve(claimed.map {
                    (id: $0.id, attempt: $0.attempt, resolution: .dead(FailureRecord(message: "boom", kind: .error)))
                })
            }
            let held = try await store.insert([NewJob(kind: "a", queue: "graveyard", maxAttempts: 1, uniqueKey: "report")]).inserted
            let claimed = try await store.claim("graveyard")
            try await store.resolve(claimed.map {
                (id: $0.id, attempt: $0.attempt, resolution: .dead(FailureRecord(message: "boom", kind: .error)))
            })
            let successor = try await store.insert([NewJob(kind: "a", queue: "other", uniqueKey: "report")]).inserted
            #expect(successor.count == 1)

            let retried = try await store.retry(.all)
            #expect(retried == [nightly[2]])
            #expect(try await store.require(nightly[0]).state == .dead)
            #expect(try await store.require(nightly[1]).state == .dead)
            #expect(try await store.require(held[0]).state == .dead)
            // Once the retried one finished, the next retry takes the next generation.
            let again = try await store.claim("graveyard")
            _ = try await store.complete(again.map { (id: $0.id, attempt: $0.attempt) })
            #expect(try await store.retry(.all) == [nightly[1]])
        }
    }

    @Test("discard cancels waiting and dead jobs with a reason, never running ones")
    func discard() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let dead = try await deadJobs(["a"], store: store)
            let running = try await store.insert([NewJob(kind: "r")]).inserted
            _ = try await store.claim()
            let waiting = try await store.insert([NewJob(kind: "w")]).inserted
            let discarded = try await store.discard(.all, reason: "discarded by operator", by: "ana@ops-1")
            #expect(Set(discarded) == Set(dead + waiting))
            #expect(try await store.require(dead[0]).cancelReason == "discarded by operator")
            #expect(try await store.require(waiting[0]).cancelledBy == "ana@ops-1")
            #expect(try await store.require(running[0]).state == .running)
        }
    }

    @Test("queue statistics count jobs per queue and state with the oldest wait")
    func statistics() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            _ = try await store.insert([NewJob(kind: "a"), NewJob(kind: "a"), NewJob(kind: "a", queue: "mail")])
            clock.advance(by: 42)
            let stats = try await store.queueStatistics()
            #expect(stats == [
                QueueStatistic(queue: "default", state: .available, count: 2, oldestWaitSeconds: 42),
                QueueStatistic(queue: "mail", state: .available, count: 1, oldestWaitSeconds: 42),
            ])
        }
    }
}
