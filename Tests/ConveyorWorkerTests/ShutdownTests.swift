import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import PostgresNIO
import Testing

@Suite("Graceful shutdown")
struct ShutdownTests {
    @Test("jobs that finish within the grace period are completed and flushed")
    func finishWithinGrace() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            registry.register(ProbeJob(probe: probe))
            let ids = try await store.insert((0..<3).map { _ in NewJob(kind: ProbeJob.kind, args: #"{"mode":"gate"}"#) }).inserted
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: WorkerHarness.configuration(grace: .seconds(30)))
            try await WorkerHarness.run([worker]) { group in
                await probe.waitForRuns(3)
                await group.triggerGracefulShutdown()
                probe.open()
            }
            for id in ids { #expect(try await store.require(id).state == .completed) }
        }
    }

    @Test("jobs still running when the grace period ends go back to available without spending an attempt")
    func returnUnfinished() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            registry.register(ProbeJob(probe: probe))
            let hanging = try await store.insert((0..<4).map { _ in NewJob(kind: ProbeJob.kind, args: #"{"mode":"hang"}"#) }).inserted
            let grace = Duration.milliseconds(300)
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: WorkerHarness.configuration(grace: grace))
            let started = ContinuousClock.now
            var stoppedAfter = Duration.zero
            try await WorkerHarness.run([worker]) { group in
                await probe.waitForRuns(4)
                await group.triggerGracefulShutdown()
            }
            stoppedAfter = ContinuousClock.now - started
            // The handlers would sleep an hour; the worker returned after the grace period instead. A bound
            // against hanging, not a speed bar: a loaded two-core CI machine took 30.5 s once.
            #expect(stoppedAfter < .seconds(300))
            for id in hanging {
                let job = try await store.require(id)
                #expect(job.state == .available && job.attempt == 0 && job.errors.isEmpty && job.lockedBy == nil)
            }
        }
    }

    @Test("after a shutdown signal no new job is claimed")
    func noClaimsAfterSignal() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let probe = Probe()
            var registry = HandlerRegistry()
            registry.register(ProbeJob(probe: probe))
            _ = try await store.insert([NewJob(kind: ProbeJob.kind, args: #"{"mode":"gate"}"#)])
            let messages = LogMessages()
            let worker = WorkerHarness.worker(
                store: store, registry: registry, configuration: WorkerHarness.configuration(grace: .seconds(30)), logger: messages.logger)
            let late = NewJob(kind: ProbeJob.kind, args: #"{"mode":"complete"}"#)
            try await WorkerHarness.run([worker]) { group in
                await probe.waitForRuns(1)
                await group.triggerGracefulShutdown()
                // The group passes the signal on asynchronously: insert only once the worker has it.
                try await messages.wait(for: "the worker takes the shutdown") { $0.contains("shutdown requested: no more claims") }
                _ = try await store.insert([late])
                probe.open()
            }
            #expect(try await store.require(late.id).state == .available)
            #expect(probe.runCounts[late.id] == nil)
        }
    }
}
