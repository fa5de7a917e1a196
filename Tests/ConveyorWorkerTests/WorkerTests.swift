import ConveyorBuiltinKinds
import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import MetricsTestKit
import PostgresNIO
import Testing

@Suite("Worker runtime")
struct WorkerTests {
    private func registry(_ probe: Probe, options: JobKindOptions = JobKindOptions()) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(ProbeJob(probe: probe, options: options))
        return registry
    }

    private func probeJob(_ mode: String, maxAttempts: Int? = nil, queue: String = "default") -> NewJob {
        NewJob(kind: ProbeJob.kind, args: #"{"mode":"\#(mode)"}"#, queue: queue, maxAttempts: maxAttempts)
    }

    @Test("several workers complete thousands of jobs, each exactly once")
    func exclusiveProcessing() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            let count = 3000
            var ids: [UUID] = []
            for _ in 0..<3 {
                ids += try await store.insert((0..<count / 3).map { _ in probeJob("complete") }).inserted
            }
            let workers = (0..<3).map { index in
                WorkerHarness.worker(
                    store: store, registry: registry(probe),
                    configuration: WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 10 + index * 20)]))
            }
            try await WorkerHarness.run(workers) { _ in await probe.waitForRuns(count) }
            #expect(probe.runCounts.count == count)
            #expect(probe.runCounts.values.allSatisfy { $0 == 1 })
            let completed = try await store.jobs(JobFilter(state: .completed, limit: count + 1))
            #expect(Set(completed.map(\.id)) == Set(ids))
            #expect(completed.allSatisfy { $0.attempt == 1 && $0.lockedBy == nil && $0.finishedAt != nil })
        }
    }

    @Test("a failing job is retried on the policy's schedule, then completes")
    func retryThenComplete() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let probe = Probe()
            let id = try await store.insert([probeJob("fail_once")]).inserted[0]
            let worker = WorkerHarness.worker(store: store, registry: registry(probe))
            try await WorkerHarness.run([worker]) { _ in
                await probe.waitForRuns(1)
                // Backoff for attempt 1 with jitter 0.5: 1 + 15 + 5·2 = 26 s.
                let failedAt = clock.now()
                var job = try await store.require(id)
                while job.state != .available {
                    await Task.yield()
                    job = try await store.require(id)
                }
                #expect(job.runAt == failedAt.addingTimeInterval(26))
                #expect(job.errors.map(\.message) == ["ProbeFailure: probe failure"])
                clock.advance(by: 26)
                await probe.waitForRuns(1)
            }
            let job = try await store.require(id)
            #expect(job.state == .completed && job.attempt == 2 && job.errors.count == 1)
        }
    }

    @Test("the attempt that reaches max_attempts dead-letters the job with its history")
    func deadLetter() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            let options = JobKindOptions(retry: RetryPolicy(maxAttempts: 3, backoff: { _, _ in .zero }))
            let registry = registry(probe, options: options)
            // The kind's policy supplies max_attempts when the job does not set it.
            let id = try await store.insert([probeJob("fail")], maxAttempts: registry.defaultMaxAttempts(for:)).inserted[0]
            try await WorkerHarness.run([WorkerHarness.worker(store: store, registry: registry)]) { _ in
                await probe.waitForRuns(3)
            }
            let job = try await store.require(id)
            #expect(job.state == .dead && job.attempt == 3 && job.maxAttempts == 3)
            #expect(job.errors.map(\.attempt) == [1, 2, 3])
            #expect(probe.runCounts[id] == 3)
        }
    }

    @Test("permanent failure, retry-after, snooze and cancel are honoured")
    func outcomes() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let probe = Probe()
            let modes = ["permanent", "retry_after", "snooze", "cancel"]
            let ids = try await store.insert(modes.map { probeJob($0) }).inserted
            try await WorkerHarness.run([WorkerHarness.worker(store: store, registry: registry(probe))]) { _ in
                await probe.waitForRuns(4)
            }
            let jobs = Dictionary(uniqueKeysWithValues: zip(modes, ids))
            let permanent = try await store.require(jobs["permanent"]!)
            #expect(permanent.state == .dead && permanent.errors.first?.kind == .permanent)
            let retried = try await store.require(jobs["retry_after"]!)
            #expect(retried.state == .available && retried.attempt == 1 && retried.runAt == clock.now().addingTimeInterval(42))
            #expect(retried.errors.first?.kind == .retryAfter)
            let snoozed = try await store.require(jobs["snooze"]!)
            #expect(snoozed.state == .available && snoozed.attempt == 0 && snoozed.runAt == clock.now().addingTimeInterval(30))
            let cancelled = try await store.require(jobs["cancel"]!)
            #expect(cancelled.state == .cancelled && cancelled.cancelReason == "not needed any more")
        }
    }

    @Test("the worker reports and counts each result it wrote; one fenced out because the job was claimed again is only counted stale")
    func resultsWritten() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            let results = WrittenResults()
            let metrics = TestMetrics()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            // No heartbeat within the test: one between the attempt's bump and the gate's opening would stop
            // the gated job as lease-lost (released) before its handler completes (seen on a loaded machine).
            configuration.lease = .seconds(7200)
            configuration.heartbeatInterval = .seconds(3600)
            let modes = ["complete", "permanent", "fail", "snooze", "cancel"]
            let ids = try await store.insert(modes.map { probeJob($0, maxAttempts: 3) }).inserted
            let fenced = try await store.insert([probeJob("gate")]).inserted[0]
            let worker = WorkerHarness.worker(store: store, registry: registry(probe), configuration: configuration, metrics: metrics)
            try await WorkerHarness.run([worker]) { _ in
                await probe.waitForRuns(modes.count + 1)
                // While the gated job runs, it is rescued and claimed again elsewhere (its attempt moves on).
                _ = try await client.query("UPDATE conveyor_jobs SET attempt = attempt + 1 WHERE id = \(fenced)", logger: TestDatabase.logger)
                probe.open()
            }
            // The shutdown flushed every result before the worker returned.
            let written = Dictionary(uniqueKeysWithValues: results.all.map { ($0.id, $0) })
            #expect(Set(written.keys) == Set(ids), "the fenced job's result must not be reported")
            for (mode, id) in zip(modes, ids) {
                let record = try await store.require(id)
                #expect(written[id]?.resolution.nextState == record.state, "\(mode)")
                #expect(written[id]?.kind == ProbeJob.kind && written[id]?.queue == "default" && written[id]?.attempt == 1)
            }
            // Every attempt is counted by outcome, the fenced one too (its handler completed); the write dropped it.
            let outcomes = ["completed": 2, "dead": 1, "retry": 1, "snoozed": 1, "cancelled": 1]
            for (outcome, count) in outcomes {
                let dimensions = [("kind", ProbeJob.kind), ("queue", "default"), ("outcome", outcome)]
                #expect(metrics.counterTotal(label: "conveyor_jobs_total", dimensions: dimensions) == Int64(count), "\(outcome)")
            }
            #expect(metrics.counterTotal(label: "conveyor_jobs_total") == Int64(modes.count + 1))
            #expect(try metrics.expectTimer("conveyor_job_duration_seconds", [("kind", ProbeJob.kind), ("queue", "default")]).values.count == modes.count + 1)
            #expect(try metrics.expectRecorder("conveyor_claim_batch_size", [("queue", "default")]).values.reduce(0, +) == Double(modes.count + 1))
            #expect(try metrics.expectTimer("conveyor_job_wait_seconds", [("kind", ProbeJob.kind), ("queue", "default")]).values.count == modes.count + 1)
            #expect(try metrics.expectRecorder("conveyor_completion_flush_size").values.reduce(0, +) == Double(modes.count + 1))
            #expect(metrics.counterTotal(label: "conveyor_completion_stale_total") == 1)
            #expect(metrics.counterTotal(label: "conveyor_store_errors_total") == 0)
        }
    }

    @Test("args that do not decode and kinds without a handler are dead at once, without retries")
    func undecodable() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            let bad = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode": 7}"#)]).inserted[0]
            let unknown = try await store.insert([NewJob(kind: "nobody.handles")]).inserted[0]
            // Same queue, claimed in the same batch (priority orders it last): once it runs, the two
            // jobs above were claimed with it, and shutdown lets them finish and writes their results.
            var markerJob = probeJob("complete")
            markerJob.priority = 9
            let marker = try await store.insert([markerJob]).inserted[0]
            let configuration = WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 5)])
            try await WorkerHarness.run([WorkerHarness.worker(store: store, registry: registry(probe), configuration: configuration)]) { _ in
                await probe.waitForRuns(1)
            }
            #expect(probe.runCounts[marker] == 1)
            let badJob = try await store.require(bad)
            #expect(badJob.state == .dead && badJob.attempt == 1 && badJob.errors.first?.kind == .badArgs)
            #expect(badJob.errors.first?.message.contains("args do not decode") == true)
            let unknownJob = try await store.require(unknown)
            #expect(unknownJob.state == .dead && unknownJob.errors.first?.kind == .unknownKind)
            #expect(unknownJob.errors.first?.message == "no handler is registered for kind nobody.handles")
        }
    }

    @Test("a job past its kind's timeout is cancelled and recorded as a timeout failure")
    func timeout() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            let options = JobKindOptions(timeout: .milliseconds(100))
            let id = try await store.insert([probeJob("hang", maxAttempts: 1)]).inserted[0]
            try await WorkerHarness.run([WorkerHarness.worker(store: store, registry: registry(probe, options: options))]) { _ in
                await probe.waitForRuns(1)
                var job = try await store.require(id)
                while job.state == .running {
                    await Task.yield()
                    job = try await store.require(id)
                }
            }
            let job = try await store.require(id)
            #expect(job.state == .dead)
            #expect(job.errors.first?.kind == .timeout)
            #expect(job.errors.first?.message.contains("timed out after") == true)
        }
    }
}
