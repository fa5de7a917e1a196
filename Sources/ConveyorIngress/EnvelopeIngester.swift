public import ConveyorCore
public import ConveyorPostgres
public import ConveyorRedis
import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle

/// Moves envelopes from the Redis ingress into PostgreSQL, each exactly once (DESIGN §3), as a `Service`.
///
/// A batch of up to ``Configuration/batchSize`` envelopes moves atomically (one Lua call) from
/// `{conveyor}:ingress` to a processing list of this ingester's own; when the ingress is empty it waits
/// in `BLMOVE` (no polling). The batch is validated, inserted in one transaction (`ON CONFLICT DO
/// NOTHING` on the id; rejected envelopes quarantined), committed — which notifies idle workers — and
/// only then deleted from Redis. The ingester refreshes an expiring key while it lives; processing lists
/// of ingesters whose key expired are recovered by the survivors. Envelopes without an `id` get one
/// derived from the batch and position, so a recovered batch never inserts twice.
public struct EnvelopeIngester: Service {
    /// Settings; the defaults suit production.
    public struct Configuration: Sendable {
        /// The Redis keys. Default `{conveyor}`.
        public var keys: IngressKeys
        /// This ingester's id, in its processing lists and heartbeat key. Default: random.
        public var ingesterID: String
        /// The most envelopes per batch. Default 500 (Lua's `unpack` limit is near 8,000).
        public var batchSize: Int
        /// How long one `BLMOVE` waits on an empty ingress; also bounds shutdown latency. Default 1 s.
        public var blockTimeout: Duration
        /// How long the heartbeat key lives without refresh. Default 30 s.
        public var heartbeatTTL: Duration
        /// How often the heartbeat is refreshed and dead ingesters' lists are looked for. Default 10 s.
        public var heartbeatInterval: Duration

        /// Creates a configuration.
        public init(
            keys: IngressKeys = IngressKeys(), ingesterID: String = EnvelopeIngester.randomID(), batchSize: Int = 500,
            blockTimeout: Duration = .seconds(1), heartbeatTTL: Duration = .seconds(30), heartbeatInterval: Duration = .seconds(10)
        ) {
            self.keys = keys
            self.ingesterID = ingesterID
            self.batchSize = batchSize
            self.blockTimeout = blockTimeout
            self.heartbeatTTL = heartbeatTTL
            self.heartbeatInterval = heartbeatInterval
        }
    }

    let configuration: Configuration
    let redis: RedisConfiguration
    let store: PostgresJobStore
    let maxAttempts: @Sendable (String) -> Int
    let onBatch: @Sendable (Batch) -> Void
    let starter: (any JobStarter)?
    let metrics: IngestMetrics
    let logger: Logger

    /// What one committed batch held (passed to the `onBatch` observer).
    public struct Batch: Sendable {
        /// The processing list it came from.
        public var key: String
        /// Envelopes in it.
        public var envelopes: Int
        /// Jobs inserted, duplicates dropped, envelopes quarantined.
        public var result: PostgresJobStore.IngestResult
    }

    /// Creates an ingester.
    ///
    /// - Parameters:
    ///   - maxAttempts: the attempts of a job whose envelope sets none, by kind (the registry's policies).
    ///   - starter: the worker of this process (`Worker.directStarts`), which starts the jobs it has
    ///     room for as they are inserted — already claimed, without a claim statement each. Default none.
    ///   - metrics: where the ingester's instruments are made (listed in `docs/operations.md`).
    ///     Default: the process's `MetricsSystem`.
    ///   - onBatch: called after each committed batch (observability and tests).
    public init(
        configuration: Configuration = Configuration(), redis: RedisConfiguration, store: PostgresJobStore,
        maxAttempts: @escaping @Sendable (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts },
        starter: (any JobStarter)? = nil, metrics: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "conveyor.ingest"), onBatch: @escaping @Sendable (Batch) -> Void = { _ in }
    ) {
        self.starter = starter
        self.metrics = IngestMetrics(factory: metrics)
        self.onBatch = onBatch
        self.configuration = configuration
        self.redis = redis
        self.store = store
        self.maxAttempts = maxAttempts
        var logger = logger
        logger[metadataKey: "ingester"] = "\(configuration.ingesterID)"
        self.logger = logger
    }

    /// A short random id.
    public static func randomID() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    public func run() async throws {
        let connection = RedisConnection(configuration: redis, name: "conveyor-ingest")
        let keys = configuration.keys
        var batchNumber = 0
        var nextHeartbeat = ContinuousClock.now
        var backoff = Duration.milliseconds(100)
        logger.info(
            "ingester started",
            metadata: ["redis": "\(redis)", "ingress": "\(keys.ingress)", "direct_start": "\(starter.map { "for \($0.workerID)" } ?? "off")"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if ContinuousClock.now >= nextHeartbeat {
                    try await heartbeat(connection)
                    try await recover(connection)
                    nextHeartbeat = ContinuousClock.now + configuration.heartbeatInterval
                }
                // A worker in this process may size the batch to its free slots, or hold it back a moment while its queues have jobs waiting.
                let size = await starter?.plan(ingester: configuration.ingesterID, limit: configuration.batchSize) ?? configuration.batchSize
                batchNumber += 1
                let batch = keys.batch(ingester: configuration.ingesterID, number: batchNumber)
                var items = try await move(into: batch, count: size, connection: connection)
                if items.isEmpty {
                    starter?.cancelPlan(ingester: configuration.ingesterID)
                    // Register the list before the blocking move, so a crash right after it is recoverable.
                    try await connection.send("SADD", keys.processingSet, batch)
                    let seconds = String(format: "%.3f", configuration.blockTimeout.seconds)
                    let first = try await connection.sendBlocking(
                        ["BLMOVE", keys.ingress, batch, "RIGHT", "LEFT", seconds].map { Data($0.utf8) },
                        timeout: configuration.blockTimeout)
                    guard case .bulk(let envelope) = first else {
                        try await connection.send("SREM", keys.processingSet, batch)
                        batchNumber -= 1
                        continue
                    }
                    items = [envelope] + (try await move(into: batch, count: size - 1, connection: connection))
                }
                try await ingest(batch: batch, items: items)
                try await release(batch, connection: connection)
                backoff = .milliseconds(100)
            } catch {
                starter?.cancelPlan(ingester: configuration.ingesterID)
                guard !Task.isCancelled else { break }
                metrics.error()
                logger.warning("ingest failed, retrying", metadata: ["error": "\(error)", "retry_in": "\(backoff.readable)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        _ = try? await connection.send("DEL", keys.heartbeat(ingester: configuration.ingesterID))
        await connection.close()
        logger.info("ingester stopped")
    }

    /// Runs the move script; returns the envelopes moved into `batch`, oldest first.
    private func move(into batch: String, count: Int, connection: RedisConnection) async throws -> [Data] {
        guard count > 0 else { return [] }
        let reply = try await connection.send(IngressMoveScript.arguments(keys: configuration.keys, batch: batch, count: count))
        if case .error(let message) = reply { throw RedisError.commandFailed(message) }
        let elements = reply.elements
        if let backlog = elements.first?.int { metrics.backlog(backlog) }
        return elements.dropFirst().compactMap { element in
            if case .bulk(let data) = element { return data }
            return nil
        }
    }

    /// Validates a batch and writes it in one transaction; retries while PostgreSQL is unreachable.
    func ingest(batch: String, items: [Data]) async throws {
        let started = ContinuousClock.now
        var jobs: [NewJob] = []
        var sources: [(derived: UUID, item: Data)] = []
        var rejected: [Rejection] = []
        for (index, item) in items.enumerated() {
            let derived = DerivedID.make(batch: batch, index: index)
            switch Envelope.decode(item, defaultID: derived) {
            case .success(let job):
                jobs.append(job)
                sources.append((derived, item))
            case .failure(let rejection):
                rejected.append(Rejection(id: derived, payload: item, reason: rejection.reason, source: batch))
                metrics.rejected(reason: rejection.code)
                logger.warning("envelope quarantined", metadata: ["reason": "\(rejection.reason)", "batch": "\(batch)"])
            }
        }
        let enqueued = jobs.compactMap(\.enqueuedAt)
        var delay = Duration.milliseconds(100)
        var tries = 0
        var isolated = 0
        while true {
            tries += 1
            do {
                var result = try await insert(jobs, rejected: rejected)
                result.inserted += isolated
                let committedAt = store.now
                metrics.committed(
                    envelopes: items.count, inserted: result.inserted, duplicates: result.duplicates, rejected: rejected.count,
                    duration: ContinuousClock.now - started, lags: enqueued.map { committedAt.timeIntervalSince($0) })
                if result.duplicates > 0 {
                    logger.info("duplicate envelopes dropped (id already ingested or unique key held)", metadata: ["count": "\(result.duplicates)"])
                }
                logger.debug("batch ingested", metadata: ["batch": "\(batch)", "inserted": "\(result.inserted)", "rejected": "\(rejected.count)"])
                onBatch(Batch(key: batch, envelopes: items.count, result: result))
                return
            } catch ConveyorStoreError.invalidData(let message) where !jobs.isEmpty {
                // PostgreSQL refused a value validation let through: find the envelopes it refuses and
                // quarantine them, so one bad envelope cannot stall the pipeline.
                logger.warning("the database refused a value in an ingest batch; isolating it", metadata: ["error": "\(message)", "batch": "\(batch)"])
                for (job, source) in zip(jobs, sources) {
                    do {
                        isolated += try await store.ingest(jobs: [job], rejected: [], maxAttempts: maxAttempts).inserted
                    } catch ConveyorStoreError.invalidData(let reason) {
                        rejected.append(Rejection(id: source.derived, payload: source.item, reason: "refused by the database: \(reason)", source: batch))
                        metrics.rejected(reason: "database")
                    }
                }
                // The accepted ones are committed; what is left is writing the quarantine.
                jobs = []
                sources = []
            } catch {
                if Task.isCancelled || (Task.isShuttingDownGracefully && tries >= 3) { throw error }
                logger.warning("writing an ingest batch failed; it stays in Redis, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay.readable)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Writes one try of a batch; the jobs this process's worker has room for are started directly.
    private func insert(_ jobs: [NewJob], rejected: [Rejection]) async throws -> PostgresJobStore.IngestResult {
        guard let starter, !jobs.isEmpty else { return try await store.ingest(jobs: jobs, rejected: rejected, maxAttempts: maxAttempts) }
        let reservation = starter.reserve(jobs, now: store.now, ingester: configuration.ingesterID)
        let start = reservation.isEmpty ? nil : PostgresJobStore.StartRequest(rows: reservation.rows, worker: starter.workerID, lease: starter.lease)
        let sent = ContinuousClock.now
        do {
            let result = try await store.ingest(jobs: jobs, rejected: rejected, maxAttempts: maxAttempts, start: start)
            starter.started(result.started, reservation: reservation, sent: sent)
            return result
        } catch {
            starter.started([], reservation: reservation, sent: sent)
            throw error
        }
    }

    private func release(_ batch: String, connection: RedisConnection) async throws {
        _ = try await connection.pipeline([
            ["DEL", batch].map { Data($0.utf8) }, ["SREM", configuration.keys.processingSet, batch].map { Data($0.utf8) },
        ])
    }

    private func heartbeat(_ connection: RedisConnection) async throws {
        let milliseconds = Int(configuration.heartbeatTTL.seconds * 1000)
        try await connection.send("SET", configuration.keys.heartbeat(ingester: configuration.ingesterID), "alive", "PX", String(milliseconds))
    }

    /// Ingests processing lists left behind: by ingesters whose heartbeat expired, or by this one
    /// (a batch whose clean-up failed). Runs between batches, so none of this ingester's lists is in flight.
    func recover(_ connection: RedisConnection) async throws {
        let keys = configuration.keys
        for member in try await connection.send("SMEMBERS", keys.processingSet).elements {
            guard let batch = member.string, let owner = keys.owner(ofBatch: batch) else { continue }
            if owner != configuration.ingesterID {
                if try await connection.send("EXISTS", keys.heartbeat(ingester: owner)).int == 1 { continue }
                let lock = try await connection.send("SET", keys.recoveryLock(batch: batch), configuration.ingesterID, "NX", "EX", "60")
                guard lock == .status("OK") else { continue }
            }
            let items = try await connection.send("LRANGE", batch, "0", "-1").elements.compactMap { element -> Data? in
                if case .bulk(let data) = element { return data }
                return nil
            }
            if !items.isEmpty {
                logger.notice("recovering an unfinished ingest batch", metadata: ["batch": "\(batch)", "envelopes": "\(items.count)", "owner": "\(owner)"])
                try await ingest(batch: batch, items: items)
            }
            try await release(batch, connection: connection)
            if owner != configuration.ingesterID { try await connection.send("DEL", keys.recoveryLock(batch: batch)) }
        }
    }
}
