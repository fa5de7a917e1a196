import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorWorker
import Foundation
import Logging
import ServiceLifecycle

/// The full path: envelopes pushed to Redis, ingested, claimed, run and completed by one worker process.
extension BenchCommand {
    struct RedisFigures {
        var pushRate: Double
        var endToEnd: Double
        var latencies: [Duration]

        func percentile(_ p: Double) -> Duration {
            let sorted = latencies.sorted()
            guard !sorted.isEmpty else { return .zero }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
    }

    static func redisPath(
        jobs: Int, concurrency: Int, ingesters: Int, directStart: Bool, samples: Int, redis: RedisConfiguration, url: DatabaseURL,
        store: PostgresJobStore, queue: String, logger: Logger
    ) async throws -> RedisFigures {
        let keys = IngressKeys(namespace: "{conveyor-bench-\(queue)}")
        let producer = RedisConnection(configuration: redis, name: "bench-producer")

        // 1. Push N envelopes (pipelined, 1,000 per LPUSH).
        let envelope = Data(#"{"v":1,"kind":"conveyor.noop","queue":"\#(queue)"}"#.utf8)
        let pushStart = ContinuousClock.now
        let commands = stride(from: 0, to: jobs, by: 1000).map { start in
            [Data("LPUSH".utf8), Data(keys.ingress.utf8)] + Array(repeating: envelope, count: min(1000, jobs - start))
        }
        _ = try await producer.pipeline(commands)
        let pushRate = Double(jobs) / (ContinuousClock.now - pushStart).seconds

        // 2. Drain them: ingest → notify → claim → run → complete.
        let counter = CountingNoop.Counter(target: jobs)
        var registry = HandlerRegistry()
        registry.register(CountingNoop(counter: counter))
        let endToEnd = try await runWorker(
            registry: registry, queue: queue, concurrency: concurrency, ingesters: ingesters, directStart: directStart, keys: keys, redis: redis, url: url, store: store, logger: logger
        ) {
            let start = ContinuousClock.now
            await counter.reached()
            return Double(jobs) / (ContinuousClock.now - start).seconds
        }

        // 3. Idle latency: one envelope at a time into an idle worker, push to handler start.
        let starts = AsyncStream<ContinuousClock.Instant>.makeStream()
        var latencyRegistry = HandlerRegistry()
        latencyRegistry.register(StartReporter(starts: starts.continuation))
        let latencies = try await runWorker(
            registry: latencyRegistry, queue: queue, concurrency: concurrency, ingesters: 1, directStart: directStart, keys: keys, redis: redis, url: url, store: store,
            logger: logger
        ) {
            var latencies: [Duration] = []
            var iterator = starts.stream.makeAsyncIterator()
            for _ in 0..<samples {
                let pushed = ContinuousClock.now
                _ = try await producer.send([Data("LPUSH".utf8), Data(keys.ingress.utf8), envelope])
                guard let started = await iterator.next() else { break }
                latencies.append(started - pushed)
            }
            return latencies
        }
        _ = try? await producer.send("DEL", keys.ingress)
        return RedisFigures(pushRate: pushRate, endToEnd: endToEnd, latencies: latencies)
    }

    /// Runs one worker (with its insert listener) and `ingesters` ingesters around `body`, then shuts them down.
    private static func runWorker<T: Sendable>(
        registry: HandlerRegistry, queue: String, concurrency: Int, ingesters: Int, directStart: Bool, keys: IngressKeys, redis: RedisConfiguration, url: DatabaseURL,
        store: PostgresJobStore, logger: Logger, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let configuration = Worker.Configuration(queues: QueueConfiguration(queues: [.init(name: queue, concurrency: concurrency)]))
        let worker = Worker(
            configuration: configuration, store: store, registry: registry, listener: JobNotificationListener(url: url, logger: logger),
            logger: logger)
        let ingesters: [any Service] = (0..<ingesters).map { _ in
            EnvelopeIngester(configuration: .init(keys: keys), redis: redis, store: store, starter: directStart ? worker.directStarts : nil, logger: logger)
        }
        return try await withRunningServices([worker] + ingesters, logger: logger) { _ in try await body() }
    }
}

/// `conveyor.noop` that reports when it starts (latency benchmark only).
struct StartReporter: JobHandler {
    struct Args: Decodable, Sendable {}
    static let kind = "conveyor.noop"
    let starts: AsyncStream<ContinuousClock.Instant>.Continuation

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        starts.yield(.now)
        return .completed
    }
}
