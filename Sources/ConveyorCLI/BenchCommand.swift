import ArgumentParser
import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorWorker
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

/// `conveyor bench`: no-op throughput of the worker runtime against the raw SQL ceiling.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure no-op job throughput: the worker runtime vs. the same SQL back to back (the ceiling).",
        discussion: """
            Inserts N conveyor.noop jobs into a scratch queue (the ingester's statement and batch size), runs VACUUM ANALYZE on the jobs table, drains them with one in-process worker and reports
            jobs/s from the first claim to the last completion written; then inserts N more, vacuums, and runs the claim and
            complete statements back to back (no runtime) with --claimers loops. With Redis (unless --no-redis) it then pushes
            N envelopes and times one worker with --ingesters ingesters draining them end to end, reported next to the
            end-to-end SQL ceiling derived from the insert and claim/complete figures; and samples idle push-to-start latency.
            Scratch rows are deleted after. Run it on a fresh database each time: ops/measure/bench.sh does.
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Jobs per phase (default 20000).") var jobs = 20_000
    @Option(help: "Worker concurrency, and claim batch of the ceiling loops (default 100).") var concurrency = 100
    @Option(help: "Concurrent claim/complete loops for the ceiling (default 2).") var claimers = 2
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var redis: RedisOptions
    @Flag(name: .customLong("no-redis"), help: "Skip the Redis phases (full path and idle latency).") var noRedis = false
    @Option(help: "Idle push-to-start latency samples (default 200).") var samples = 200
    @Option(help: "Ingesters in the worker process for the full path (default 1).") var ingesters = 1
    @Flag(name: .customLong("no-direct-start"), help: "Ingesters insert every job available, to be claimed (the worker's behaviour before direct starts; for comparison).")
    var noDirectStart = false
    @Flag(help: "Only the full path (Redis → completed) and the latency samples: no PostgreSQL-only phases, no ceilings (for profiling).")
    var endToEndOnly = false
    @Flag(help: "Record the metrics into a Prometheus registry, as a process with --metrics-address does (their cost; default: not recorded).")
    var prometheus = false

    func run() async throws {
        let logger = {
            var logger = Logger(label: "conveyor.bench")
            logger.logLevel = ProcessInfo.processInfo.environment["CONVEYOR_BENCH_TRACE"] == nil ? .warning : .trace
            return logger
        }()
        if prometheus { MetricsSystem.bootstrap(MetricsOptions.factory(PrometheusCollectorRegistry())) }
        let jobs = max(1, self.jobs), concurrency = max(1, self.concurrency), claimers = max(1, self.claimers)
        let samples = max(1, self.samples)
        let url = try database.url()
        let redisConfiguration = noRedis ? nil : try redis.configuration(purpose: "the full-path benchmark pushes to Redis; pass --no-redis to skip it")
        let result = try await database.withClient(logger: logger) { client in
            let store = PostgresJobStore(client: client)
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            let runtimeQueue = "bench_\(suffix)", ceilingQueue = "bench_\(suffix)_sql"
            defer { _ = (runtimeQueue, ceilingQueue) }
            do {
                if endToEndOnly {
                    guard let redisConfiguration else { throw CommandError.failed("--end-to-end-only needs Redis") }
                    let figures = try await Self.redisPath(
                        jobs: jobs, concurrency: concurrency, ingesters: max(1, ingesters), directStart: !noDirectStart, samples: samples, redis: redisConfiguration, url: url,
                        store: store, queue: runtimeQueue, logger: logger)
                    _ = try await store.deleteAll(queue: runtimeQueue)
                    return (Double.nan, Double.nan, Double.nan, Double.nan, Optional(figures))
                }
                let insertRate = try await Self.insert(jobs, queue: runtimeQueue, store: store)
                try await store.vacuum()
                let runtime = try await Self.drainWithWorker(jobs, queue: runtimeQueue, concurrency: concurrency, store: store, logger: logger)
                let completed = try await store.jobs(JobFilter(state: .completed, queue: runtimeQueue, limit: jobs + 1)).count
                guard completed == jobs else {
                    throw CommandError.failed("only \(completed) of \(jobs) jobs completed")
                }
                _ = try await Self.insert(jobs, queue: ceilingQueue, store: store)
                try await store.vacuum()
                let ceiling = try await Self.drainWithSQL(jobs, queue: ceilingQueue, batch: concurrency, loops: claimers, store: store)
                _ = try await store.deleteAll(queue: runtimeQueue)
                _ = try await store.deleteAll(queue: ceilingQueue)
                try await store.vacuum()
                let directCeiling = try await Self.directWithSQL(
                    jobs, queue: ceilingQueue, batch: Self.directBatch(concurrency: concurrency), loops: claimers, store: store)
                _ = try await store.deleteAll(queue: ceilingQueue)
                var figures: RedisFigures?
                if let redisConfiguration {
                    try await store.vacuum()
                    figures = try await Self.redisPath(
                        jobs: jobs, concurrency: concurrency, ingesters: max(1, ingesters), directStart: !noDirectStart, samples: samples, redis: redisConfiguration, url: url, store: store,
                        queue: runtimeQueue, logger: logger)
                    _ = try await store.deleteAll(queue: runtimeQueue)
                }
                return (insertRate, runtime, ceiling, directCeiling, figures)
            } catch {
                _ = try? await store.deleteAll(queue: runtimeQueue)
                _ = try? await store.deleteAll(queue: ceilingQueue)
                _ = try? await store.deleteAll(queue: runtimeQueue)
                throw error
            }
        }
        let (insertRate, runtime, ceiling, directCeiling, figures) = result
        let ratio = runtime / ceiling
        // With direct starts the full path runs two statements per job — the insert that starts it and the
        // completion — timed back to back as the direct ceiling. Without, it runs all three (insert, claim,
        // complete) on the same two cores, so its ceiling is their costs added up: 1 / (1/insert +
        // 1/claim-and-complete), derived, not timed.
        let claimPathCeiling = 1 / (1 / insertRate + 1 / ceiling)
        let endToEndCeiling = noDirectStart ? claimPathCeiling : directCeiling
        let milliseconds = { (duration: Duration) in (duration.seconds * 10_000).rounded() / 10 }
        if json {
            var object: [String: Any] = ["jobs": jobs, "concurrency": concurrency, "claimers": claimers, "ingesters": ingesters]
            if !endToEndOnly {
                object["insert_jobs_per_second"] = Int(insertRate)
                object["runtime_jobs_per_second"] = Int(runtime)
                object["ceiling_jobs_per_second"] = Int(ceiling)
                object["ratio"] = (ratio * 1000).rounded() / 1000
                object["direct_ceiling_jobs_per_second"] = Int(directCeiling)
                object["claim_path_ceiling_jobs_per_second"] = Int(claimPathCeiling)
            }
            object["direct_start"] = !noDirectStart
            if let figures {
                object["redis_push_jobs_per_second"] = Int(figures.pushRate)
                object["end_to_end_jobs_per_second"] = Int(figures.endToEnd)
                if !endToEndOnly {
                    object["end_to_end_ceiling_jobs_per_second"] = Int(endToEndCeiling)
                    object["end_to_end_ratio"] = (figures.endToEnd / endToEndCeiling * 1000).rounded() / 1000
                }
                object["latency_p50_ms"] = milliseconds(figures.percentile(0.5))
                object["latency_p99_ms"] = milliseconds(figures.percentile(0.99))
                object["latency_samples"] = figures.latencies.count
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("jobs: \(jobs), worker concurrency: \(concurrency), ceiling loops: \(claimers) x claim \(concurrency)")
            if !endToEndOnly {
                print(String(format: "insert (the ingester's statement):     %8.0f jobs/s", insertRate))
                print(String(format: "worker runtime (claim→run→complete):    %8.0f jobs/s", runtime))
                print(String(format: "SQL ceiling (claim+complete loops):     %8.0f jobs/s", ceiling))
                print(String(format: "runtime / ceiling:                      %8.1f %%", ratio * 100))
                print(String(format: "direct-start SQL ceiling (insert running + complete loops): %8.0f jobs/s", directCeiling))
            }
            if let figures {
                print(String(format: "Redis push (pipelined LPUSH):           %8.0f jobs/s", figures.pushRate))
                print(String(format: "end to end (Redis → completed):         %8.0f jobs/s", figures.endToEnd))
                if !endToEndOnly {
                    print(
                        noDirectStart
                            ? String(format: "end-to-end SQL ceiling (derived):       %8.0f jobs/s (1 / (1/insert + 1/ceiling))", endToEndCeiling)
                            : String(format: "end-to-end SQL ceiling (direct starts): %8.0f jobs/s", endToEndCeiling))
                    print(String(format: "end to end / its ceiling:               %8.1f %%", figures.endToEnd / endToEndCeiling * 100))
                }
                print(String(format: "idle push → handler start: p50 %.1f ms, p99 %.1f ms (%d samples)",
                    milliseconds(figures.percentile(0.5)), milliseconds(figures.percentile(0.99)), figures.latencies.count))
            }
        }
    }

    /// Inserts `count` jobs the way the ingester does (its statement and batch size); returns jobs/s.
    static func insert(_ count: Int, queue: String, store: PostgresJobStore) async throws -> Double {
        let start = ContinuousClock.now
        var remaining = count
        let batchSize = EnvelopeIngester.Configuration().batchSize
        while remaining > 0 {
            let batch = min(batchSize, remaining)
            _ = try await store.ingest(jobs: (0..<batch).map { _ in NewJob(kind: "conveyor.noop", queue: queue) }, rejected: [], maxAttempts: { _ in 25 })
            remaining -= batch
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    /// Runs a worker on `queue` until `count` handlers ran and every result is written; returns jobs/s.
    static func drainWithWorker(_ count: Int, queue: String, concurrency: Int, store: PostgresJobStore, logger: Logger) async throws -> Double {
        let counter = CountingNoop.Counter(target: count)
        var registry = HandlerRegistry()
        registry.register(CountingNoop(counter: counter))
        let configuration = Worker.Configuration(queues: QueueConfiguration(queues: [.init(name: queue, concurrency: concurrency)]))
        let worker = Worker(configuration: configuration, store: store, registry: registry, logger: logger)
        let start = ContinuousClock.now
        try await withRunningServices([worker], logger: logger) { _ in await counter.reached() }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    /// The batch an ingester takes for a worker of `concurrency` slots with room (``DirectStarts``).
    static func directBatch(concurrency: Int) -> Int {
        min(EnvelopeIngester.Configuration().batchSize, max(concurrency / 2, DirectStarts.minimumBatch))
    }

    /// The direct-start ceiling: `loops` tasks each inserting `batch` jobs already claimed (the ingest
    /// statement with a start request) and completing them at once, until `count` are done.
    static func directWithSQL(_ count: Int, queue: String, batch: Int, loops: Int, store: PostgresJobStore) async throws -> Double {
        let batches = (count + batch - 1) / batch
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for loop in 0..<loops {
                group.addTask {
                    for index in stride(from: loop, to: batches, by: loops) {
                        let size = min(batch, count - index * batch)
                        let jobs = (0..<size).map { _ in NewJob(kind: "conveyor.noop", queue: queue) }
                        let result = try await store.ingest(
                            jobs: jobs, rejected: [], maxAttempts: { _ in 25 },
                            start: .init(rows: Array(0..<size), worker: "bench-\(loop)", lease: .seconds(300)))
                        guard result.started.count == size else {
                            throw CommandError.failed("the direct-start ceiling started \(result.started.count) of \(size) jobs")
                        }
                        try await store.complete(result.started.map { (id: $0.id, attempt: $0.attempt) })
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    /// The ceiling: `loops` tasks each claiming `batch` jobs and completing them at once, until none are left.
    static func drainWithSQL(_ count: Int, queue: String, batch: Int, loops: Int, store: PostgresJobStore) async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for loop in 0..<loops {
                group.addTask {
                    while true {
                        let claimed = try await store.claim(queue: queue, limit: batch, worker: "bench-\(loop)", lease: .seconds(300))
                        if claimed.isEmpty { return }
                        try await store.complete(claimed.map { (id: $0.id, attempt: $0.attempt) })
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }
}

/// `conveyor.noop` that counts its runs and signals when a target is reached (benchmarks only).
struct CountingNoop: JobHandler {
    struct Args: Decodable, Sendable {}

    final class Counter: Sendable {
        let target: Int
        private let count = Atomic<Int>(0)
        private let done = AsyncStream<Void>.makeStream()

        init(target: Int) { self.target = target }

        func increment() {
            if count.add(1, ordering: .relaxed).newValue == target { done.continuation.yield() }
        }

        func reached() async {
            for await _ in done.stream { return }
        }
    }

    static let kind = "conveyor.noop"
    let counter: Counter

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        counter.increment()
        return .completed
    }
}
