import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import PostgresNIO
import Testing

@Suite("Stopping running jobs: timeouts, cancellation, lost leases")
struct StopTests {
    @Test("a handler that ignores cancellation still times out, and cannot hold the shutdown past the grace period")
    func ignoresCancellation() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            // "gate" waits on a continuation that cancellation does not resume.
            registry.register(ProbeJob(probe: probe, options: JobKindOptions(timeout: .milliseconds(200), retry: RetryPolicy(maxAttempts: 1))))
            let timedOut = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode":"gate"}"#, queue: "slow", maxAttempts: 1)]).inserted[0]
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration(queues: [.init(name: "slow", concurrency: 1)], grace: .milliseconds(200))
            configuration.onResultsWritten = results.callback
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration)
            try await WorkerHarness.run([worker]) { _ in
                await probe.waitForRuns(1)
                try await results.wait(for: "the timeout is recorded") { $0.contains { $0.id == timedOut && $0.resolution.nextState == .dead } }
            }
            let record = try await store.require(timedOut)
            #expect(record.errors.map(\.kind) == [.timeout])

            // Shutdown: the grace period ends, the handler ignores its cancellation, the worker returns anyway.
            let held = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode":"gate"}"#, queue: "slow")]).inserted[0]
            var patient = HandlerRegistry()
            patient.register(ProbeJob(probe: probe, options: JobKindOptions(timeout: .seconds(3600))))
            let shuttingDown = WorkerHarness.worker(
                store: store, registry: patient,
                configuration: WorkerHarness.configuration(queues: [.init(name: "slow", concurrency: 1)], grace: .milliseconds(200)))
            try await WorkerHarness.run([shuttingDown]) { group in
                await probe.waitForRuns(1)
                await group.triggerGracefulShutdown()
            }
            let back = try await store.require(held)
            #expect(back.state == .available && back.attempt == 0 && back.errors.isEmpty)
            probe.open()
        }
    }

    @Test("a cancellation reaches a running job through the notification, long before any heartbeat")
    func cancelRunning() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            registry.register(ProbeJob(probe: probe))
            var configuration = WorkerHarness.configuration()
            // Heartbeats every 10 minutes: only the notification can deliver the cancellation in time.
            configuration.lease = .seconds(1800)
            configuration.heartbeatInterval = .seconds(600)
            let results = WrittenResults()
            configuration.onResultsWritten = results.callback
            let worker = Worker(
                configuration: configuration, store: store, registry: registry,
                listener: JobNotificationListener(url: try DatabaseURL(url), logger: TestDatabase.logger),
                logger: TestDatabase.logger)
            let id = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode":"hang"}"#)]).inserted[0]
            try await WorkerHarness.run([worker]) { _ in
                await probe.waitForRuns(1)
                let result = try await store.cancel(.ids([id]), reason: "campaign paused by client", by: "alice@ops")
                #expect(result.requested == [id])
                try await results.wait(for: "the job ends cancelled", timeout: .seconds(30)) {
                    $0.contains { $0.id == id && $0.resolution.nextState == .cancelled }
                }
            }
            let record = try await store.require(id)
            #expect(record.cancelReason == "campaign paused by client" && record.cancelledBy == "alice@ops")
            #expect(record.attempt == 1 && record.errors.isEmpty && record.lockedBy == nil)
        }
    }

    @Test("a worker stops a job it no longer holds (rescued after its lease lapsed) at its next heartbeat")
    func leaseLost() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            registry.register(ProbeJob(probe: probe))
            var configuration = WorkerHarness.configuration()
            configuration.lease = .seconds(60)
            configuration.heartbeatInterval = .milliseconds(100)
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration)
            let id = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode":"hang"}"#)]).inserted[0]
            try await WorkerHarness.run([worker]) { _ in
                await probe.waitForRuns(1)
                // As if the worker had been cut off long enough for the leader to rescue the job: a
                // leader whose clock is an hour ahead sees the 60 s lease expired (and makes the job due
                // in an hour, so nobody claims it again during the test).
                let leader = PostgresJobStore(client: client, clock: ManualClock(Date().addingTimeInterval(3600)))
                let rescued = try await leader.rescueExpired()
                #expect(rescued.retried == [id])
                // The worker sees the loss at its next heartbeat and cancels the handler.
                #expect(await probe.waitForStop() == id)
            }
            let record = try await store.require(id)
            // The stopped attempt's result was fenced off: the rescue's record stands.
            #expect(record.state == .available && record.attempt == 1 && record.errors.map(\.kind) == [.leaseExpired])
        }
    }
}
