import ConveyorBuiltinKinds
import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import ServiceLifecycle
import Testing

@testable import ConveyorWorker

@Suite("Direct starts through a real ingester and worker")
struct DirectStartTests {
    @Test("an idle worker's ingester inserts the jobs it has room for already claimed: they run without a claim and complete")
    func idleWorkerStartsIngestedJobs() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            var registry = HandlerRegistry()
            registry.registerBuiltinKinds()
            let results = WrittenResults()
            // No insert listener and a long poll: a job inserted `available` would wait a minute for a
            // claim, so the test fails (times out) unless every job is started directly.
            let configuration = Worker.Configuration(
                queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 50)]), pollInterval: .seconds(60),
                completionLinger: .milliseconds(2), onResultsWritten: results.callback)
            let worker = Worker(configuration: configuration, store: fixture.store, registry: registry, logger: TestDatabase.logger)
            let probe = IngestProbe()
            let ingester = EnvelopeIngester(
                configuration: .init(keys: fixture.keys, batchSize: 100, blockTimeout: .milliseconds(200)), redis: fixture.redisConfiguration,
                store: fixture.store, starter: worker.directStarts, logger: TestDatabase.logger, onBatch: probe.observer)
            let count = 40
            try await withRunningServices([worker, ingester], logger: TestDatabase.logger) { _ in
                // The worker's first claim found the queue empty: from now on there is room to start directly.
                await worker.directStarts.waitUntilStartable()
                try await fixture.push((0..<count).map { _ in IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop"}"#) })
                try await results.wait(for: "every job completes") { $0.filter { $0.resolution == .complete }.count >= count }
            }
            let jobs = try await fixture.store.jobs(JobFilter(limit: 100))
            #expect(jobs.count == count)
            for job in jobs {
                // Inserted and attempted by the same statement: no claim in between.
                #expect(job.state == .completed && job.attempt == 1 && job.attemptedAt == job.insertedAt, "\(job)")
            }
        }
    }
}
