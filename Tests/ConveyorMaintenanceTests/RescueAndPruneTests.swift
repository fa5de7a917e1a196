import ConveyorCore
import ConveyorMaintenance
import ConveyorTestSupport
import Foundation
import MetricsTestKit
import Testing

@Suite("Leases, rescue, fencing and pruning (store, manual clock)")
struct RescueAndPruneTests {
    @Test("an expired lease is rescued: available after the backoff with lease_expired recorded, dead when attempts are spent, cancelled when asked")
    func rescue() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let retried = try await store.insert([NewJob(kind: "k", maxAttempts: 3)]).inserted[0]
            let spent = try await store.insert([NewJob(kind: "k", maxAttempts: 1)]).inserted[0]
            let cancelled = try await store.insert([NewJob(kind: "k", maxAttempts: 3)]).inserted[0]
            let claimed = try await store.claim(queue: "default", limit: 10, worker: "w1", lease: .seconds(30))
            #expect(claimed.count == 3)
            _ = try await store.cancel(.ids([cancelled]), reason: "not needed", by: "alice")

            clock.advance(by: 30)
            #expect(try await store.rescueExpired().count == 0, "a lease is not expired at its last instant")
            clock.advance(by: 0.001)
            let result = try await store.rescueExpired()
            #expect(result.retried == [retried] && result.dead == [spent] && result.cancelled == [cancelled])

            let back = try await store.require(retried)
            // The attempt is spent, and the job waits out the default backoff for attempt 1 (1⁴ + 15 s).
            #expect(back.state == .available && back.attempt == 1 && back.lockedBy == nil)
            #expect(back.runAt == clock.now().addingTimeInterval(16))
            #expect(back.errors.map(\.kind) == [.leaseExpired])
            #expect(back.errors.first?.message.contains("w1") == true)
            #expect(back.errors.first?.message.contains("worker lost, rescue 1 of at most 3") == true)
            #expect(try await store.claim(queue: "default", limit: 10, worker: "w2", lease: .seconds(30)).isEmpty, "not before its backoff")
            clock.advance(by: 16)
            #expect(try await store.require(spent).state == .dead)
            let stopped = try await store.require(cancelled)
            #expect(stopped.state == .cancelled && stopped.cancelReason == "not needed" && stopped.cancelledBy == "alice")

            // The leader's pass does the same and counts what it rescued, by destination.
            let metrics = TestMetrics()
            let maintenance = Maintenance(configuration: .init(election: .init(holder: "test")), store: store, metrics: metrics, logger: TestDatabase.logger)
            #expect(try await store.claim(queue: "default", limit: 10, worker: "w2", lease: .seconds(30)).map(\.id) == [retried])
            clock.advance(by: 31)
            try await maintenance.rescue()
            #expect(try await store.require(retried).errors.map(\.kind) == [.leaseExpired, .leaseExpired])
            #expect(metrics.counterTotal(label: "conveyor_rescued_total", dimensions: [("to", "available")]) == 1)
            #expect(metrics.counterTotal(label: "conveyor_rescued_total") == 1)
        }
    }

    @Test("a job rescued three times (its handler keeps killing its worker) is dead-lettered, however many attempts it has left")
    func rescueLimit() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let id = try await store.insert([NewJob(kind: "k", maxAttempts: 25)]).inserted[0]
            var waits: [TimeInterval] = []
            for round in 1...3 {
                let claimed = try await store.claim(queue: "default", limit: 1, worker: "w\(round)", lease: .seconds(10))
                #expect(claimed.map(\.id) == [id] && claimed.first?.attempt == round)
                clock.advance(by: 11)
                let result = try await store.rescueExpired()
                let job = try await store.require(id)
                if round < 3 {
                    #expect(result.retried == [id])
                    waits.append(job.runAt.timeIntervalSince(clock.now()))
                    clock.advance(by: job.runAt.timeIntervalSince(clock.now()))
                } else {
                    #expect(result.dead == [id])
                    #expect(job.state == .dead && job.attempt == 3 && job.finishedAt != nil)
                    #expect(job.errors.map(\.kind) == [.leaseExpired, .leaseExpired, .leaseExpired])
                    #expect(job.errors.last?.message.contains("rescue 3 of at most 3") == true)
                }
            }
            // The default schedule without jitter: attempt⁴ + 15 s.
            #expect(waits == [16, 31])
            // Configurable: one rescue allowed, no wait.
            let other = try await store.insert([NewJob(kind: "k", maxAttempts: 25)]).inserted[0]
            _ = try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(10))
            clock.advance(by: 11)
            #expect(try await store.rescueExpired(maxRescues: 2, backoff: { _ in .zero }).retried == [other])
            #expect(try await store.require(other).runAt == clock.now())
            _ = try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(10))
            clock.advance(by: 11)
            #expect(try await store.rescueExpired(maxRescues: 2, backoff: { _ in .zero }).dead == [other])
        }
    }

    @Test("a stale attempt is fenced: after a rescue and a new claim, the old holder can neither renew, complete nor fail it")
    func fencing() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let id = try await store.insert([NewJob(kind: "k")]).inserted[0]
            let first = try #require(try await store.claim(queue: "default", limit: 1, worker: "old", lease: .seconds(10)).first)
            let renewed = try await store.heartbeat([(id, first.attempt)], lease: .seconds(10))
            #expect(renewed.extended == [id])

            clock.advance(by: 11)
            #expect(try await store.rescueExpired().retried == [id])
            #expect(try await store.heartbeat([(id, first.attempt)], lease: .seconds(10)).extended.isEmpty)
            clock.advance(by: 16)
            let second = try #require(try await store.claim(queue: "default", limit: 1, worker: "new", lease: .seconds(10)).first)
            #expect(second.attempt == first.attempt + 1)

            #expect(try await store.heartbeat([(id, first.attempt)], lease: .seconds(10)).extended.isEmpty)
            #expect(try await store.complete([(id, first.attempt)]).isEmpty)
            let failure = FailureRecord(message: "late", kind: .error)
            #expect(try await store.resolve([(id, first.attempt, .dead(failure))]).isEmpty)
            #expect(try await store.heartbeat([(id, second.attempt)], lease: .seconds(10)).extended == [id])
            #expect(try await store.complete([(id, second.attempt)]) == [id])
            let record = try await store.require(id)
            #expect(record.state == .completed && record.attempt == 2 && record.errors.map(\.kind) == [.leaseExpired])
        }
    }

    @Test("a heartbeat keeps a lease alive however long the job runs")
    func heartbeatKeepsLease() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let id = try await store.insert([NewJob(kind: "k")]).inserted[0]
            let job = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(30)).first)
            // Two hours in 10 s heartbeats, rescue passes in between: far past the hour after which
            // timer-based rescuers run a job again, and never expired.
            for beat in 1...720 {
                clock.advance(by: 10)
                if beat % 60 == 0 { #expect(try await store.rescueExpired().count == 0) }
                _ = try await store.heartbeat([(id, job.attempt)], lease: .seconds(30))
            }
            #expect(try await store.rescueExpired().count == 0)
            #expect(try await store.require(id).state == .running)
        }
    }

    @Test("a cancellation waiting jobs see at once; running ones see it in the heartbeat and end cancelled")
    func cancel() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let running = try await store.insert([NewJob(kind: "k", priority: 0)]).inserted[0]
            let waiting = try await store.insert([NewJob(kind: "k", priority: 9)]).inserted[0]
            let job = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(30)).first)
            #expect(job.id == running)

            let result = try await store.cancel(.queue("default"), reason: "campaign stopped", by: "alice")
            #expect(result.cancelled == [waiting] && result.requested == [running])
            let beat = try await store.heartbeat([(running, job.attempt)], lease: .seconds(30))
            #expect(beat.cancelRequested == [running: "campaign stopped"])

            // The handler failed just before it was stopped: the retry must not happen.
            let failure = FailureRecord(message: "boom", kind: .error)
            #expect(try await store.resolve([(running, job.attempt, .retry(after: .seconds(1), failure))]) == [running])
            let record = try await store.require(running)
            #expect(record.state == .cancelled && record.cancelReason == "campaign stopped" && record.cancelledBy == "alice")
            #expect(try await store.claim(queue: "default", limit: 10, worker: "w", lease: .seconds(30)).isEmpty)
        }
    }

    @Test("a paused queue yields no claims; resuming brings its jobs back")
    func pause() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert([NewJob(kind: "k", queue: "mail"), NewJob(kind: "k", queue: "render")])
            #expect(try await store.pause(queue: "mail", by: "ops"))
            #expect(try await store.pause(queue: "mail", by: "ops") == false)
            #expect(try await store.pausedQueues().map(\.queue) == ["mail"])
            #expect(try await store.claim(queue: "mail", limit: 10, worker: "w", lease: .seconds(30)).isEmpty)
            #expect(try await store.claim(queue: "render", limit: 10, worker: "w", lease: .seconds(30)).count == 1)
            #expect(try await store.resume(queue: "mail"))
            #expect(try await store.claim(queue: "mail", limit: 10, worker: "w", lease: .seconds(30)).count == 1)
        }
    }

    @Test("pruning deletes finished jobs past their retention, in batches, and never touches unfinished ones")
    func prune() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let day: TimeInterval = 86_400
            let metrics = TestMetrics()
            let maintenance = Maintenance(
                configuration: .init(
                    election: .init(holder: "test"), finishedRetention: .seconds(day), deadRetention: .seconds(30 * day),
                    batchSize: 7),
                store: store, metrics: metrics, logger: TestDatabase.logger)

            // Old: 20 completed, 5 cancelled, 5 dead (all finished 2 days ago), plus waiting and running
            // jobs inserted as long ago.
            let old = try await store.insert((0..<30).map { _ in NewJob(kind: "k", maxAttempts: 1) }).inserted
            let oldWaiting = try await store.insert([NewJob(kind: "k", queue: "later")]).inserted
            let claimed = try await store.claim(queue: "default", limit: 30, worker: "w", lease: .seconds(3 * day))
            #expect(claimed.count == 30)
            let byID = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0) })
            _ = try await store.complete(old[0..<20].map { ($0, byID[$0]!.attempt) })
            _ = try await store.resolve(old[20..<25].map { ($0, byID[$0]!.attempt, .cancel(reason: "no")) })
            _ = try await store.resolve(old[25..<30].map { ($0, byID[$0]!.attempt, .dead(FailureRecord(message: "x", kind: .error))) })
            let oldRunning = try await store.insert([NewJob(kind: "k")]).inserted
            _ = try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(3 * day))

            clock.advance(by: 2 * day)
            let recent = try await store.insert([NewJob(kind: "k")]).inserted
            let recentJob = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(60)).first)
            _ = try await store.complete([(recent[0], recentJob.attempt)])

            try await maintenance.prune()
            var remaining = Set(try await store.jobs(JobFilter(limit: 1000)).map(\.id))
            #expect(remaining == Set(old[25..<30] + oldWaiting + oldRunning + recent))
            #expect(metrics.counterTotal(label: "conveyor_pruned_total") == 25)

            clock.advance(by: 29 * day)
            try await maintenance.prune()
            remaining = Set(try await store.jobs(JobFilter(limit: 1000)).map(\.id))
            #expect(remaining == Set(oldWaiting + oldRunning), "dead jobs go after 30 days; unfinished ones never")
            #expect(metrics.counterTotal(label: "conveyor_pruned_total") == 31)
        }
    }

    @Test("pruning deletes quarantined envelopes past their retention, oldest first in batches; off keeps them")
    func pruneRejected() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let day: TimeInterval = 86_400
            let reject = { (count: Int) in
                (0..<count).map { index in
                    Rejection(id: UUID(), payload: Data("bad \(index)".utf8), reason: "envelope is not valid JSON", source: "test")
                }
            }
            _ = try await store.ingest(jobs: [], rejected: reject(25), maxAttempts: { _ in 1 })
            clock.advance(by: 20 * day)
            _ = try await store.ingest(jobs: [], rejected: reject(3), maxAttempts: { _ in 1 })
            clock.advance(by: 11 * day)

            let keepAll = Maintenance(
                configuration: .init(election: .init(holder: "test"), rejectedRetention: nil, batchSize: 7),
                store: store, logger: TestDatabase.logger)
            try await keepAll.prune()
            #expect(try await store.rejectedEnvelopes(limit: 100).count == 28)

            let metrics = TestMetrics()
            let maintenance = Maintenance(
                configuration: .init(election: .init(holder: "test"), rejectedRetention: .seconds(30 * day), batchSize: 7),
                store: store, metrics: metrics, logger: TestDatabase.logger)
            try await maintenance.prune()
            let left = try await store.rejectedEnvelopes(limit: 100)
            #expect(left.count == 3, "the 25 older than 30 days go, in batches of 7; the 3 of 11 days stay")
            #expect(metrics.counterTotal(label: "conveyor_rejected_pruned_total") == 25)
        }
    }
}
