import ConveyorBuiltinKinds
import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import ServiceLifecycle
import Synchronization
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

    @Test("jobs of a chunk kind started directly by the ingester still run in chunks, not one by one")
    func directStartsAreChunked() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let calls = ChunkSizes()
            var registry = HandlerRegistry()
            registry.register(chunk: CountingChunk(calls: calls))
            let results = WrittenResults()
            let configuration = Worker.Configuration(
                queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 100)]), pollInterval: .seconds(60),
                completionLinger: .milliseconds(2), onResultsWritten: results.callback)
            let worker = Worker(configuration: configuration, store: fixture.store, registry: registry, logger: TestDatabase.logger)
            let ingester = EnvelopeIngester(
                configuration: .init(keys: fixture.keys, batchSize: 100, blockTimeout: .milliseconds(200)), redis: fixture.redisConfiguration,
                store: fixture.store, starter: worker.directStarts, logger: TestDatabase.logger)
            try await withRunningServices([worker, ingester], logger: TestDatabase.logger) { _ in
                await worker.directStarts.waitUntilStartable()
                try await fixture.push((0..<40).map { _ in IngesterHarness.envelope(#"{"v":1,"kind":"test.count-chunk"}"#) })
                try await results.wait(for: "every job completes") { $0.filter { $0.resolution == .complete }.count >= 40 }
            }
            // The linger (a minute) is beyond the test's wait: only a full chunk of 40 can have run them.
            #expect(calls.all == [40])
            for job in try await fixture.store.jobs(JobFilter(limit: 100)) {
                #expect(job.state == .completed && job.attemptedAt == job.insertedAt, "started directly: \(job)")
            }
        }
    }
}

/// The sizes of the chunks a handler was called with.
final class ChunkSizes: Sendable {
    private let sizes = Mutex<[Int]>([])
    func add(_ size: Int) { sizes.withLock { $0.append(size) } }
    var all: [Int] { sizes.withLock { $0 } }
}

/// Completes every job of its chunks (40 per chunk, a minute's linger), recording the chunks' sizes.
struct CountingChunk: ChunkHandler {
    struct Args: Decodable, Sendable {}
    static let kind = "test.count-chunk"
    let calls: ChunkSizes
    var chunk: ChunkOptions { ChunkOptions(size: 40, linger: .seconds(60)) }

    func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        calls.add(jobs.count)
        return Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, ChunkResult.completed) })
    }
}
