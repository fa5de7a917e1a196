import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// Renews the leases of every job a worker runs, in one statement per heartbeat, and acts on what the
/// heartbeat learns: jobs no longer held (rescued meanwhile) are stopped, jobs with a cancellation
/// request are cancelled. A cancellation notification triggers a heartbeat at once.
///
/// When heartbeats fail (the database is unreachable), leases are not renewed and each producer's
/// watchdog stops the jobs whose lease lapsed by this process's clock: another worker may rescue and
/// run them, so this one must not go on.
///
/// Jobs whose results wait in the completer are renewed too: a finished job is still held until its
/// result is written, so a slow write cannot make the rescuer run it again.
///
/// Progress that handlers reported (``ProgressBuffer``) rides on the heartbeat: while any report is
/// pending, a heartbeat goes every ``progressInterval`` (1 s) instead of every ``interval``.
struct LeaseKeeper: Sendable {
    let store: PostgresJobStore
    let running: [RunningJobs]
    /// Finished jobs whose results are not written yet (``JobCompleter/held()``).
    let finished: @Sendable () -> [(id: UUID, attempt: Int)]
    let progress: ProgressBuffer
    let lease: Duration
    let interval: Duration
    let metrics: WorkerMetrics
    let logger: Logger
    /// How often pending progress is written: about once a second per job at most.
    var progressInterval: Duration = .seconds(1)

    /// Heartbeats every ``interval`` and whenever `triggers` yields, until cancelled.
    func run(triggers: AsyncStream<Void>) async {
        await withTaskGroup(of: Void.self) { group in
            let (ticks, tick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    tick.yield()
                }
            }
            group.addTask {
                for await _ in triggers { tick.yield() }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: progressInterval)
                    if progress.hasPending { tick.yield() }
                }
            }
            for await _ in ticks {
                if Task.isCancelled { break }
                await beat()
            }
            group.cancelAll()
        }
    }

    /// One heartbeat.
    func beat() async {
        let active = running.flatMap { $0.held() }
        var seen = Set(active.map(\.id))
        let held = active + finished().filter { seen.insert($0.id).inserted }
        let reports = progress.take()
        guard !held.isEmpty else { return }
        let sent = ContinuousClock.now
        do {
            let attempts = Dictionary(held.map { ($0.id, $0.attempt) }, uniquingKeysWith: { first, _ in first })
            var updates: [UUID: JobProgress] = [:]
            for (id, report) in reports where attempts[id] == report.attempt { updates[id] = report.progress }
            let result = try await store.heartbeat(held, lease: lease, progress: updates)
            metrics.heartbeat(jobs: held.count)
            metrics.progressWritten(updates.keys.filter(result.extended.contains).count)
            for registry in running { registry.renewed(result.extended, until: sent + lease) }
            for job in active where !result.extended.contains(job.id) {
                logger.warning(
                    "job no longer held at its attempt (its lease lapsed and it was rescued): stopping it",
                    metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)"])
                for registry in running { registry.stop(job.id, attempt: job.attempt, .leaseLost) }
            }
            for (id, reason) in result.cancelRequested {
                logger.info("cancellation requested: stopping the job", metadata: ["job_id": "\(id)", "reason": "\(reason)"])
                for registry in running { registry.stop(id, .cancelled(reason)) }
            }
        } catch {
            progress.restore(reports)
            metrics.storeError(operation: "heartbeat")
            logger.warning(
                "renewing job leases failed; jobs stop when their lease lapses unless a heartbeat succeeds first",
                metadata: ["error": "\(error)", "jobs": "\(held.count)"])
        }
    }
}
