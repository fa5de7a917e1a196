import ConveyorCore
public import ConveyorPostgres
import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle

/// Leader-run maintenance, as a `Service` that every worker and scheduler process runs: all of them
/// take part in the election, and only the leader rescues expired leases and prunes finished jobs.
///
/// - Rescue runs every ``Configuration/rescueInterval`` (default 1 s), so a killed worker's jobs run
///   again within their lease plus about a second.
/// - Pruning runs every ``Configuration/pruneInterval`` in batches of ``Configuration/pruneBatch``,
///   each its own short statement, until nothing old is left.
/// - The queue counts' changes are folded every ``Configuration/foldInterval`` (default 1 s), so the
///   statistics read stays a few rows (migration 0009).
public struct Maintenance: Service {
    /// Maintenance settings; the defaults suit production.
    public struct Configuration: Sendable {
        /// The election (this process's name, lease and renewal).
        public var election: LeaderElection.Configuration
        /// Time between two rescue passes. Default 1 s.
        public var rescueInterval: Duration
        /// Time between two pruning passes. Default 60 s.
        public var pruneInterval: Duration
        /// How long completed and cancelled jobs are kept (`nil`: forever). Default 24 h.
        public var finishedRetention: Duration?
        /// How long dead jobs are kept (`nil`: forever). Default 30 days.
        public var deadRetention: Duration?
        /// How long quarantined envelopes are kept (`nil`: until purged by hand). Default 30 days: a
        /// producer gone wrong must not fill the disk with rejects.
        public var rejectedRetention: Duration?
        /// Time between two folds of the queue counts' changes. Default 1 s.
        public var foldInterval: Duration = .seconds(1)
        /// Rows per rescue and per pruning statement. Default 1000.
        public var batchSize: Int
        /// How many times one job may be rescued (its worker lost) before it is dead-lettered. Default 3.
        public var maxRescues: Int = PostgresJobStore.defaultMaxRescues
        /// How long a rescued job waits before it runs again, by the attempt its worker lost. Default
        /// ``PostgresJobStore/defaultRescueBackoff(_:)`` (16 s after attempt 1, 31 s, 96 s…), so a job
        /// that crashes its worker does not take the next one down at once.
        public var rescueBackoff: @Sendable (Int) -> Duration = PostgresJobStore.defaultRescueBackoff

        /// Creates a configuration.
        public init(
            election: LeaderElection.Configuration, rescueInterval: Duration = .seconds(1), pruneInterval: Duration = .seconds(60),
            finishedRetention: Duration? = .seconds(24 * 3600), deadRetention: Duration? = .seconds(30 * 24 * 3600),
            rejectedRetention: Duration? = .seconds(30 * 24 * 3600), batchSize: Int = 1000
        ) {
            self.election = election
            self.rescueInterval = rescueInterval
            self.pruneInterval = pruneInterval
            self.finishedRetention = finishedRetention
            self.deadRetention = deadRetention
            self.rejectedRetention = rejectedRetention
            self.batchSize = batchSize
        }
    }

    let configuration: Configuration
    let store: PostgresJobStore
    let metrics: any MetricsFactory
    let logger: Logger

    /// Creates the maintenance service; `metrics` makes its instruments (default: the process's `MetricsSystem`).
    public init(
        configuration: Configuration, store: PostgresJobStore, metrics: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "conveyor.maintenance")
    ) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        let election = LeaderElection(configuration: configuration.election, store: store, metrics: metrics, logger: logger)
        await election.run(until: { try? await gracefulShutdown() }) {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await every(configuration.rescueInterval) { try await rescue() } }
                group.addTask { await every(configuration.pruneInterval) { try await prune() } }
                group.addTask { await every(configuration.foldInterval) { try await store.foldQueueCounts() } }
            }
        }
    }

    /// Runs `pass` now and then every `interval` until cancelled; failures are logged and retried next time.
    private func every(_ interval: Duration, _ pass: @Sendable () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await pass()
            } catch {
                guard !Task.isCancelled else { return }
                Counter(label: "conveyor_maintenance_errors_total", factory: metrics).increment()
                logger.warning("maintenance pass failed; retrying at the next one", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One rescue pass: every expired lease, in batches.
    public func rescue() async throws {
        while !Task.isCancelled {
            let result = try await store.rescueExpired(
                limit: configuration.batchSize, maxRescues: configuration.maxRescues, backoff: configuration.rescueBackoff)
            guard result.count > 0 else { return }
            Counter(label: "conveyor_rescued_total", dimensions: [("to", "available")], factory: metrics).increment(by: result.retried.count)
            Counter(label: "conveyor_rescued_total", dimensions: [("to", "dead")], factory: metrics).increment(by: result.dead.count)
            Counter(label: "conveyor_rescued_total", dimensions: [("to", "cancelled")], factory: metrics).increment(by: result.cancelled.count)
            logger.warning(
                "rescued jobs whose lease expired (their worker died, froze or was cut off)",
                metadata: [
                    "available": "\(result.retried.count)", "dead": "\(result.dead.count)",
                    "cancelled": "\(result.cancelled.count)",
                    "job_ids": "\(result.retried.prefix(10).map(\.uuidString).joined(separator: ","))",
                ])
            if result.count < configuration.batchSize { return }
        }
    }

    /// One pruning pass: deletes ended key pauses and closed rate windows, then old finished jobs, then
    /// old quarantined envelopes, in small batches until none is left.
    public func prune() async throws {
        _ = try await store.pruneLimitState()
        let retentions = [configuration.finishedRetention, configuration.deadRetention, configuration.rejectedRetention]
        guard retentions.contains(where: { $0 != nil }) else { return }
        let now = try await store.now()
        let cutoff = { (retention: Duration?) in retention.map { now.addingTimeInterval(-$0.seconds) } }
        let finishedBefore = cutoff(configuration.finishedRetention), deadBefore = cutoff(configuration.deadRetention)
        if finishedBefore != nil || deadBefore != nil {
            let total = try await inBatches { try await store.prune(finishedBefore: finishedBefore, deadBefore: deadBefore, limit: $0) }
            if total > 0 {
                Counter(label: "conveyor_pruned_total", factory: metrics).increment(by: total)
                logger.info("pruned finished jobs past their retention", metadata: ["deleted": "\(total)"])
            }
        }
        if let rejectedBefore = cutoff(configuration.rejectedRetention) {
            let total = try await inBatches { try await store.pruneRejected(before: rejectedBefore, limit: $0) }
            if total > 0 {
                Counter(label: "conveyor_rejected_pruned_total", factory: metrics).increment(by: total)
                logger.info("pruned quarantined envelopes past their retention", metadata: ["deleted": "\(total)"])
            }
        }
    }

    /// Runs `delete` with the batch size until a batch comes back short; returns the rows deleted.
    private func inBatches(_ delete: (Int) async throws -> Int) async throws -> Int {
        var total = 0
        while !Task.isCancelled {
            let deleted = try await delete(configuration.batchSize)
            total += deleted
            if deleted < configuration.batchSize { break }
        }
        return total
    }
}
