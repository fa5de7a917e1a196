import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import MetricsTestKit
import Synchronization
import Testing

/// The sizes of the chunks a handler was called with.
final class ChunkCalls: Sendable {
    private let sizes = Mutex<[Int]>([])
    func add(_ size: Int) { sizes.withLock { $0.append(size) } }
    var all: [Int] { sizes.withLock { $0 } }
}

/// A chunk handler that answers each job as its args say, and records the size of every call.
struct MixedChunk: ChunkHandler {
    struct Args: Decodable, Sendable { var outcome: String }
    static let kind = "test.chunk"
    let calls: ChunkCalls
    var chunk: ChunkOptions { ChunkOptions(size: 50, linger: .seconds(30)) }
    var options: JobKindOptions { JobKindOptions(retry: RetryPolicy(maxAttempts: 5)) }

    func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        calls.add(jobs.count)
        var results: [UUID: ChunkResult] = [:]
        for job in jobs {
            switch job.args.outcome {
            case "complete": results[job.id] = .completed
            case "result": results[job.id] = .outcome(.completedWithResult(json: #"{"sent":true}"#))
            case "retry": results[job.id] = .failed("upstream said 500")
            case "later": results[job.id] = .failed("rate limited", retryAfter: .seconds(120))
            case "permanent": results[job.id] = .permanent("invalid ad account")
            case "snooze": results[job.id] = .outcome(.snooze(.seconds(300)))
            default: break  // "none": the handler forgets it
            }
        }
        return results
    }
}

@Suite("Chunk handlers", .timeLimit(.minutes(2)))
struct ChunkHandlerTests {
    @Test("a chunk of 50 with mixed outcomes resolves each job exactly as returned; a job left out fails with no outcome; undecodable args are dead alone")
    func mixedOutcomes() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let outcomes = ["complete", "result", "retry", "later", "permanent", "snooze", "none"]
            var jobs = (0..<49).map { NewJob(kind: MixedChunk.kind, args: #"{"outcome":"\#(outcomes[$0 % outcomes.count])"}"#) }
            jobs.append(NewJob(kind: MixedChunk.kind, args: #"{"nope":1}"#))
            let ids = try await store.insert(jobs).inserted
            let handler = MixedChunk(calls: ChunkCalls())
            let calls = handler.calls
            var registry = HandlerRegistry()
            registry.register(chunk: handler)
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration(queues: [.init(name: "default", concurrency: 100)])
            configuration.onResultsWritten = results.callback
            let metrics = TestMetrics()
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration, metrics: metrics)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every job resolved") { $0.count == 50 }
            }
            // One claim took all 50: one call, not 50 and not a linger's wait (30 s, beyond the time limit).
            #expect(calls.all == [49], "the undecodable job never reaches the handler")
            for (index, id) in ids.enumerated() {
                let job = try await store.require(id)
                let outcome = index < 49 ? outcomes[index % outcomes.count] : "undecodable"
                switch outcome {
                case "complete": #expect(job.state == .completed && job.result == nil)
                case "result": #expect(job.state == .completed && job.result == #"{"sent": true}"#)
                case "retry":
                    #expect(job.state == .available && job.attempt == 1 && job.errors.map(\.message) == ["upstream said 500"])
                case "later":
                    #expect(job.state == .available && job.errors.map(\.kind) == [.retryAfter])
                    #expect(job.runAt.timeIntervalSince(job.attemptedAt ?? .distantPast) > 100)
                case "permanent": #expect(job.state == .dead && job.errors.map(\.message) == ["invalid ad account"])
                case "snooze": #expect(job.state == .available && job.attempt == 0 && job.errors.isEmpty)
                case "none":
                    #expect(job.state == .available && job.errors.first?.message.contains("no outcome") == true, "never lost: \(job.state)")
                default:
                    #expect(job.state == .dead && job.errors.map(\.kind) == [.badArgs])
                }
            }
            #expect(try metrics.expectRecorder("conveyor_chunk_size", [("kind", MixedChunk.kind)]).lastValue == 50)
        }
    }

    @Test("a partial chunk runs after its linger; a handler that throws fails every job of its chunk, each keeping its history")
    func lingerAndThrow() async throws {
        struct Failing: ChunkHandler {
            struct Args: Decodable, Sendable {}
            static let kind = "test.chunk-fail"
            let calls: ChunkCalls
            var chunk: ChunkOptions { ChunkOptions(size: 1000, linger: .milliseconds(200)) }
            var options: JobKindOptions { JobKindOptions(retry: RetryPolicy(maxAttempts: 2)) }
            func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
                calls.add(jobs.count)
                throw JobFailure.permanent("the batch endpoint returned HTML")
            }
        }
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let ids = try await store.insert((0..<7).map { _ in NewJob(kind: Failing.kind) }).inserted
            let handler = Failing(calls: ChunkCalls())
            var registry = HandlerRegistry()
            registry.register(chunk: handler)
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every job resolved") { $0.count == 7 }
            }
            #expect(handler.calls.all.reduce(0, +) == 7)
            for id in ids {
                let job = try await store.require(id)
                #expect(job.state == .dead && job.errors.map(\.message) == ["the batch endpoint returned HTML"])
            }
        }
    }

    @Test("the kind's timeout stops the chunk as a whole: every job of it is recorded as a timeout and retried")
    func timeout() async throws {
        struct Stuck: ChunkHandler {
            struct Args: Decodable, Sendable {}
            static let kind = "test.chunk-stuck"
            var chunk: ChunkOptions { ChunkOptions(size: 3) }
            var options: JobKindOptions { JobKindOptions(timeout: .milliseconds(300), retry: RetryPolicy(maxAttempts: 3)) }
            func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
                try await Task.sleep(for: .seconds(600))
                return [:]
            }
        }
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let ids = try await store.insert((0..<3).map { _ in NewJob(kind: Stuck.kind) }).inserted
            var registry = HandlerRegistry()
            registry.register(chunk: Stuck())
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every job resolved") { $0.count == 3 }
            }
            for id in ids {
                let job = try await store.require(id)
                #expect(job.state == .available && job.errors.map(\.kind) == [.timeout], "\(job.state) \(job.errors)")
            }
        }
    }
}
