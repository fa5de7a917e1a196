import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import MetricsTestKit
import PostgresNIO
import Testing

/// A handler that ends in ways PostgreSQL cannot store as given.
struct HostileResultJob: JobHandler {
    struct Args: Decodable, Sendable { var mode: String }
    static let kind = "test.hostile_result"

    struct UpstreamError: Error, CustomStringConvertible { var description: String }

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        switch args.mode {
        case "nul": throw UpstreamError(description: "upstream said \u{0}here")
        case "huge": throw UpstreamError(description: "<html>" + String(repeating: "é", count: 600_000) + "</html>")
        case "retry-after": throw JobFailure.retryAfter(.seconds(1e15), "come back in thirty million years")
        case "snooze": return .snooze(.seconds(1e15))
        case "cancel": return .cancel(reason: "no\u{0}pe")
        default: return .completed
        }
    }
}

@Suite("Poison results", .timeLimit(.minutes(2)))
struct PoisonResultTests {
    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(HostileResultJob())
        return registry
    }

    @Test("results PostgreSQL cannot store as given (NUL, a megabyte message, a retry-after past timestamptz) are written storable, with the flush's other results")
    func storableResults() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let modes = ["nul", "huge", "retry-after", "snooze", "cancel", "ok", "ok"]
            let ids = try await store.insert(modes.map { NewJob(kind: HostileResultJob.kind, args: #"{"mode":"\#($0)"}"#) }).inserted
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            // A long linger: every result goes into one flush.
            configuration.completionLinger = .milliseconds(300)
            let worker = WorkerHarness.worker(store: store, registry: Self.registry(), configuration: configuration)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every result written") { $0.count == modes.count }
            }
            let jobs = try await ids.asyncMap { try await store.require($0) }
            let byMode = Dictionary(zip(modes, jobs), uniquingKeysWith: { first, _ in first })
            let nul = try #require(byMode["nul"]?.errors.last?.message)
            #expect(!nul.contains("\u{0}") && nul.contains("upstream said \u{FFFD}here"))
            let huge = try #require(byMode["huge"]?.errors.last?.message)
            #expect(huge.utf8.count <= FailureRecord.maxMessageBytes && huge.hasSuffix("bytes in all]") && huge.hasPrefix("UpstreamError: <html>éé"))
            let tenYears = clock.now().addingTimeInterval(JobResolution.maxDelay.seconds)
            #expect(byMode["retry-after"]?.state == .available && byMode["retry-after"]?.runAt == tenYears)
            #expect(byMode["snooze"]?.state == .available && byMode["snooze"]?.runAt == tenYears)
            #expect(byMode["cancel"]?.state == .cancelled && byMode["cancel"]?.cancelReason == "no\u{FFFD}pe")
            #expect(jobs.filter { $0.state == .completed }.count == 2)
        }
    }

    @Test("5,000 jobs of kinds no handler knows are dead-lettered under one metric label, not 5,000")
    func unknownKindsShareALabel() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            for chunk in stride(from: 0, to: 5000, by: 1000) {
                _ = try await store.insert((chunk..<(chunk + 1000)).map { NewJob(kind: "made.up.\($0)") })
            }
            _ = try await store.insert([NewJob(kind: HostileResultJob.kind, args: #"{"mode":"ok"}"#)])
            let metrics = TestMetrics()
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 100)])
            configuration.onResultsWritten = results.callback
            let worker = WorkerHarness.worker(store: store, registry: Self.registry(), configuration: configuration, metrics: metrics)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every job ends") { $0.count == 5001 }
            }
            let kinds = Set(metrics.timers(label: "conveyor_job_wait_seconds").compactMap { $0.dimensions.first { $0.0 == "kind" }?.1 })
            #expect(kinds == ["(unknown)", HostileResultJob.kind])
            let outcomes = Set(metrics.counters(label: "conveyor_jobs_total").compactMap { $0.dimensions.first { $0.0 == "kind" }?.1 })
            #expect(outcomes == ["(unknown)", HostileResultJob.kind])
            #expect(metrics.counterTotal(label: "conveyor_jobs_total", dimensions: [("kind", "(unknown)"), ("queue", "default"), ("outcome", "dead")]) == 5000)
        }
    }

    @Test("a result PostgreSQL refuses (a data error) is isolated: the flush's other results are written, and it is recorded as a failure that says so")
    func refusedResultIsolated() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let ids = try await store.insert(
                (0..<5).map { NewJob(kind: HostileResultJob.kind, args: $0 == 2 ? #"{"mode":"ok","refuse":true}"# : #"{"mode":"ok"}"#) }
            ).inserted
            // Refuses to complete one job with a data exception (SQLSTATE 22023), as PostgreSQL refuses a
            // value it cannot store.
            try await TestDatabase.installTrigger(
                "refuse_completion", on: client, event: "BEFORE UPDATE", when: "NEW.state = 'completed' AND NEW.args ? 'refuse'",
                body: "RAISE EXCEPTION 'cannot store this result' USING ERRCODE = 'invalid_parameter_value';")
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            configuration.completionLinger = .milliseconds(300)
            let worker = WorkerHarness.worker(store: store, registry: Self.registry(), configuration: configuration)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every result written") { $0.count == ids.count }
            }
            let jobs = try await ids.asyncMap { try await store.require($0) }
            #expect(jobs.enumerated().allSatisfy { $0.offset == 2 || $0.element.state == .completed })
            let refused = jobs[2]
            #expect(refused.state == .available, "retried later, not lost")
            #expect(refused.errors.last?.message.contains("the result of this attempt could not be recorded") == true, "\(refused.errors)")
            #expect(refused.errors.last?.message.contains("cannot store this result") == true)
        }
    }

    /// Makes every completion fail on the server (SQLSTATE P0001), as a database that cannot take writes
    /// would, while heartbeats (which leave the state alone) still pass.
    static func failCompletions(_ client: PostgresClient) async throws {
        try await TestDatabase.installTrigger(
            "no_completions", on: client, event: "BEFORE UPDATE", when: "OLD.state = 'running' AND NEW.state <> OLD.state",
            body: "RAISE EXCEPTION 'writes are failing';")
    }

    @Test("a finished job's lease is renewed while its result waits to be written, and the backlog of results is bounded")
    func pendingResultsKeepTheirLeases() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let ids = try await store.insert((0..<40).map { _ in NewJob(kind: HostileResultJob.kind, args: #"{"mode":"ok"}"#) }).inserted
            try await Self.failCompletions(client)
            let metrics = TestMetrics()
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 10)])
            configuration.onResultsWritten = results.callback
            configuration.heartbeatInterval = .milliseconds(50)
            configuration.maxPendingResults = 5
            configuration.lease = .seconds(30)
            let worker = WorkerHarness.worker(store: store, registry: Self.registry(), configuration: configuration, metrics: metrics)
            try await WorkerHarness.run([worker]) { _ in
                // 10 finished jobs hold their slots waiting for room, 5 results wait in the buffer.
                try await eventually("the worker fills its slots and its backlog") {
                    try await store.jobs(JobFilter(state: .running)).count == 15
                }
                let beats: @Sendable () -> Int = { (try? metrics.expectRecorder("conveyor_heartbeat_jobs").values.count) ?? 0 }
                let before = beats()
                try await eventually("five more heartbeats") { beats() >= before + 5 }
                // Nothing more was claimed: the backlog is full, so no slot came free.
                #expect(try await store.jobs(JobFilter(state: .running)).count == 15)
                // Every held job, finished or not, had its lease renewed by the (manual) clock's now.
                clock.advance(by: 29)
                // One renewal may have been on its way with the old time; the second after it was sent later.
                let moved = beats()
                try await eventually("two heartbeats after the clock moved") { beats() >= moved + 2 }
                clock.advance(by: 2)
                #expect(try await store.rescueExpired().count == 0, "no finished job's lease lapsed")
                _ = try await client.query("DROP TRIGGER no_completions ON conveyor_jobs", logger: TestDatabase.logger).collect()
                try await results.wait(for: "every result written") { $0.count == ids.count }
            }
            #expect(try await store.jobs(JobFilter(state: .completed, limit: 100)).count == ids.count)
        }
    }

    @Test("a worker whose results cannot be written stops after the grace period plus the flush deadline, with an error, even with finished jobs waiting for room")
    func flushDeadline() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let ids = try await store.insert((0..<6).map { _ in NewJob(kind: HostileResultJob.kind, args: #"{"mode":"ok"}"#) }).inserted
            try await Self.failCompletions(client)
            let messages = LogMessages()
            var configuration = WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 5)], grace: .seconds(1))
            configuration.flushDeadline = .milliseconds(500)
            configuration.maxPendingResults = 1
            let worker = WorkerHarness.worker(store: store, registry: Self.registry(), configuration: configuration, logger: messages.logger)
            let started = ContinuousClock.now
            // All six finished: one result in flight (its job's slot was freed, so the sixth was claimed),
            // five jobs holding their slots while they wait for room in the backlog.
            await #expect(throws: Worker.Error.resultsNotRecorded(6)) {
                try await WorkerHarness.run([worker]) { _ in
                    try await messages.wait(for: "the write fails") { $0.contains("recording job results failed, retrying") }
                }
            }
            // Without the flush deadline it would retry for ever: a bound against hanging, with room for a
            // loaded two-core CI machine (32.9 s once).
            #expect(ContinuousClock.now - started < .seconds(100))
            #expect(messages.all.contains("could not record job results; their leases will return the jobs"))
            let states = try await ids.asyncMap { try await store.require($0).state }
            #expect(states.allSatisfy { $0 == .running }, "left to their leases: \(states)")
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
