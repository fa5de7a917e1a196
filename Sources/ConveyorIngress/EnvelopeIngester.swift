public import ConveyorCore
public import ConveyorPostgres
public import ConveyorRedis
import Crypto
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
        // Batch keys (and the ids derived from them for envelopes without one) carry this run's random
        // incarnation: an ingester restarted under the same id (a pod name) numbers its batches from 1
        // again, and must not derive the ids of the batches it ingested before.
        let incarnation = EnvelopeIngester.randomID()
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
                let batch = keys.batch(ingester: configuration.ingesterID, number: "\(incarnation)-\(batchNumber)")
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
                    if envelope.count > Envelope.maxBytes {
                        // BLMOVE carries whatever arrives; an oversized one is quarantined alone, bounded.
                        try await ingest(batch: batch, items: [envelope], connection: connection)
                        try await release(batch, items: [envelope], connection: connection)
                        continue
                    }
                    items = [envelope] + (try await move(into: batch, count: size - 1, connection: connection, offset: 1))
                }
                try await ingest(batch: batch, items: items, connection: connection)
                try await release(batch, items: items, connection: connection)
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

    /// Runs the move script; returns the envelopes moved into `batch`, oldest first. `offset` is how many
    /// the batch already holds (the script names oversized envelopes by their position in it).
    private func move(into batch: String, count: Int, connection: RedisConnection, offset: Int = 0) async throws -> [Data] {
        guard count > 0 else { return [] }
        let reply = try await connection.send(
            IngressMoveScript.arguments(keys: configuration.keys, batch: batch, count: count, offset: offset))
        if case .error(let message) = reply { throw RedisError.commandFailed(message) }
        let elements = reply.elements
        if let backlog = elements.first?.int { metrics.backlog(backlog) }
        return elements.dropFirst().compactMap { element in
            if case .bulk(let data) = element { return data }
            return nil
        }
    }

    /// After this many failed tries of a batch in which PostgreSQL answered with an error (not a lost
    /// connection), the batch is written one envelope at a time, and what PostgreSQL refuses alone is
    /// quarantined: no batch is retried forever.
    static let isolateAfterFailures = 3

    /// Validates a batch and writes it in one transaction; retries while PostgreSQL is unreachable.
    ///
    /// Envelopes PostgreSQL refuses (a value validation let through) are found by writing the batch one
    /// envelope at a time and quarantined, so one bad envelope cannot stall the pipeline; so is a batch
    /// that keeps failing for any other reason the server gives. The heartbeat is refreshed while it
    /// retries, so survivors do not take a batch that is only waiting for PostgreSQL.
    func ingest(batch: String, items: [Data], connection: RedisConnection) async throws {
        let started = ContinuousClock.now
        var jobs: [NewJob] = []
        var sources: [(derived: UUID, item: Data)] = []
        var rejected: [Rejection] = []
        for (index, item) in items.enumerated() {
            let derived = DerivedID.make(batch: batch, index: index)
            if let marker = OversizeMarker(item, batch: batch, index: index),
                let rejection = try await oversized(marker, id: derived, batch: batch, connection: connection)
            {
                rejected.append(rejection)
                metrics.rejected(reason: "too_large")
                logger.warning("envelope quarantined", metadata: ["reason": "\(rejection.reason)", "batch": "\(batch)"])
                continue
            }
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
        var refusals = 0
        var isolated = PostgresJobStore.IngestResult(inserted: 0, duplicates: 0, quarantined: 0)
        while true {
            tries += 1
            do {
                if !jobs.isEmpty && refusals >= Self.isolateAfterFailures {
                    try await isolate(&jobs, &sources, into: &rejected, result: &isolated, batch: batch)
                    continue
                }
                var result = try await insert(jobs, rejected: rejected)
                result.inserted += isolated.inserted
                result.duplicates += isolated.duplicates
                result.uniqueKeyDuplicates += isolated.uniqueKeyDuplicates
                let committedAt = store.now
                metrics.committed(
                    envelopes: items.count, inserted: result.inserted, duplicateIDs: result.duplicates - result.uniqueKeyDuplicates,
                    duplicateUniqueKeys: result.uniqueKeyDuplicates, rejected: rejected.count,
                    duration: ContinuousClock.now - started, lags: enqueued.map { committedAt.timeIntervalSince($0) })
                if result.duplicates > result.uniqueKeyDuplicates {
                    logger.info(
                        "envelopes dropped: their id was already ingested", metadata: ["count": "\(result.duplicates - result.uniqueKeyDuplicates)", "batch": "\(batch)"])
                }
                if result.uniqueKeyDuplicates > 0 {
                    logger.info(
                        "envelopes dropped: an unfinished job holds their unique key", metadata: ["count": "\(result.uniqueKeyDuplicates)", "batch": "\(batch)"])
                }
                logger.debug("batch ingested", metadata: ["batch": "\(batch)", "inserted": "\(result.inserted)", "rejected": "\(rejected.count)"])
                onBatch(Batch(key: batch, envelopes: items.count, result: result))
                return
            } catch ConveyorStoreError.invalidData(let message) where !jobs.isEmpty {
                // PostgreSQL refused a value validation let through: find the envelopes it refuses.
                logger.warning("the database refused a value in an ingest batch; isolating it", metadata: ["error": "\(message)", "batch": "\(batch)"])
                refusals = Self.isolateAfterFailures
            } catch {
                if Task.isCancelled || (Task.isShuttingDownGracefully && tries >= 3) { throw error }
                if ConveyorStoreError.isStatementFailure(error) { refusals += 1 }
                logger.warning(
                    "writing an ingest batch failed; it stays in Redis, retrying",
                    metadata: ["error": "\(error)", "retry_in": "\(delay.readable)", "batch": "\(batch)", "try": "\(tries)"])
                // Still alive: survivors must not recover this batch while it only waits for PostgreSQL.
                try? await heartbeat(connection)
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Writes `jobs` one at a time, each in its own statement; quarantines those PostgreSQL refuses
    /// alone, whatever its reason. Progress survives a lost connection: what is written leaves `jobs`.
    private func isolate(
        _ jobs: inout [NewJob], _ sources: inout [(derived: UUID, item: Data)], into rejected: inout [Rejection],
        result: inout PostgresJobStore.IngestResult, batch: String
    ) async throws {
        while let job = jobs.first, let source = sources.first {
            do {
                let one = try await store.ingest(jobs: [job], rejected: [], maxAttempts: maxAttempts)
                result.inserted += one.inserted
                result.duplicates += one.duplicates
                result.uniqueKeyDuplicates += one.uniqueKeyDuplicates
            } catch let error where ConveyorStoreError.isStatementFailure(error) {
                let reason = (error as? ConveyorStoreError).map(\.description) ?? "\(error)"
                rejected.append(Rejection(id: source.derived, payload: source.item, reason: "refused by the database: \(reason)", source: batch))
                metrics.rejected(reason: "database")
                logger.warning("envelope quarantined: the database refused it", metadata: ["error": "\(reason)", "batch": "\(batch)"])
            }
            jobs.removeFirst()
            sources.removeFirst()
        }
    }

    /// How much of an oversized envelope the quarantine keeps, read from where the move script stored it,
    /// in chunks (a Redis string can be 512 MB). `nil` when nothing is stored there: then the marker came
    /// from a producer and is quarantined like any other string.
    private func oversized(_ marker: OversizeMarker, id: UUID, batch: String, connection: RedisConnection) async throws -> Rejection? {
        guard let length = try await connection.send("STRLEN", marker.key).int, length > 0 else { return nil }
        let chunk = 1 << 20
        var hash = SHA256()
        var prefix = Data()
        var offset = 0
        while offset < length {
            let reply = try await connection.send("GETRANGE", marker.key, String(offset), String(offset + chunk - 1))
            guard case .bulk(let data) = reply, !data.isEmpty else { break }
            if prefix.count < Rejection.maxStoredBytes { prefix.append(data.prefix(Rejection.maxStoredBytes - prefix.count)) }
            hash.update(data: data)
            offset += data.count
        }
        return Rejection(
            id: id, prefix: prefix, size: length, sha256: Rejection.hex(hash.finalize()),
            reason: "envelope is \(length) bytes, at most \(Envelope.maxBytes) allowed (the first \(prefix.count) bytes are kept)",
            source: batch)
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

    /// Deletes a committed batch: its processing list, what the move script stored aside for it, and
    /// its entry in the processing set.
    private func release(_ batch: String, items: [Data], connection: RedisConnection) async throws {
        let aside = items.enumerated().compactMap { OversizeMarker($1, batch: batch, index: $0)?.key }
        _ = try await connection.pipeline([
            (["DEL", batch] + aside).map { Data($0.utf8) }, ["SREM", configuration.keys.processingSet, batch].map { Data($0.utf8) },
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
                try await ingest(batch: batch, items: items, connection: connection)
            }
            try await release(batch, items: items, connection: connection)
            if owner != configuration.ingesterID { try await connection.send("DEL", keys.recoveryLock(batch: batch)) }
        }
    }
}
