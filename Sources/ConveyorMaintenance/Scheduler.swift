public import ConveyorCore
public import ConveyorPostgres
public import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle

/// Emits the jobs of cron schedules (DESIGN §6), as a `Service` run by `conveyor scheduler`.
///
/// Only the elected `scheduler` leader emits. Each slot's job carries a unique key and an id derived
/// from schedule and slot, and each emission records the newest handled slot in the same transaction,
/// so a slot is inserted once even when two schedulers emit during a failover, and a restart never
/// re-emits a slot already handled. Missed slots after downtime follow each schedule's catch-up policy.
public struct Scheduler: Service {
    let schedules: [Schedule]
    let store: PostgresJobStore
    let clock: any ConveyorClock
    let election: LeaderElection.Configuration
    let maxAttempts: @Sendable (String) -> Int
    let metrics: any MetricsFactory
    let logger: Logger

    /// Creates a scheduler; `clock` gives the time slots are compared with (inject one in tests).
    public init(
        schedules: [Schedule], store: PostgresJobStore, election: LeaderElection.Configuration,
        clock: any ConveyorClock = SystemClock(), maxAttempts: @escaping @Sendable (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts },
        metrics: any MetricsFactory = MetricsSystem.factory, logger: Logger = Logger(label: "conveyor.scheduler")
    ) {
        self.metrics = metrics
        self.schedules = schedules
        self.store = store
        self.clock = clock
        self.election = election
        self.maxAttempts = maxAttempts
        self.logger = logger
    }

    public func run() async throws {
        logger.info("scheduler started", metadata: ["schedules": "\(schedules.filter(\.enabled).map(\.name).joined(separator: ","))"])
        await LeaderElection(configuration: election, store: store, metrics: metrics, logger: logger).run(until: { try? await gracefulShutdown() }) {
            while !Task.isCancelled {
                do {
                    try await tick()
                } catch {
                    guard !Task.isCancelled else { return }
                    Counter(label: "conveyor_scheduler_errors_total", factory: metrics).increment()
                    logger.warning("emitting scheduled jobs failed; retrying", metadata: ["error": "\(error)"])
                }
                // Wake at the next slot, at the latest every 5 s (a clock jump or an override is noticed).
                let now = clock.now()
                let next = schedules.filter(\.enabled).compactMap { $0.cron.next(after: now, in: $0.timeZone) }.min()
                let wait = min(max(next.map { $0.timeIntervalSince(now) } ?? 5, 0.05), 5)
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            }
        }
        logger.info("scheduler stopped")
    }

    /// One emission pass at the clock's current time: for each enabled schedule, the due slots per its
    /// policy. Returns the ids inserted. Safe to run concurrently in several processes.
    @discardableResult
    public func tick() async throws -> [UUID] {
        let now = clock.now()
        let states = try await store.scheduleStates()
        var inserted: [UUID] = []
        for schedule in schedules where schedule.enabled {
            let (emit, through) = schedule.due(lastHandled: states[schedule.name], now: now)
            guard let through else { continue }
            let ids = try await store.emitScheduled(
                schedule: schedule.name, jobs: emit.map(schedule.job(for:)), through: through, maxAttempts: maxAttempts)
            inserted += ids
            if !ids.isEmpty {
                Counter(label: "conveyor_scheduled_jobs_total", dimensions: [("schedule", schedule.name)], factory: metrics).increment(by: ids.count)
                logger.info(
                    "emitted scheduled job", metadata: ["schedule": "\(schedule.name)", "kind": "\(schedule.kind)", "slots": "\(emit.map { RFC3339.format($0) })"])
            }
        }
        return inserted
    }
}
