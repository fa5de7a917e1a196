import ConveyorCore
import ConveyorPostgres
import Logging

/// Claims jobs of one queue — never more than it has free slots — and runs each in a child task.
///
/// Wakes on a finished job, on the poll interval (for jobs whose `run_at` came due) and on shutdown.
/// On shutdown it stops claiming, lets running jobs finish within the grace period, then stops the
/// rest, which go back to `available` without spending an attempt.
struct QueueProducer: Sendable {
    let queue: QueueConfiguration.Queue
    let store: PostgresJobStore
    let executor: JobExecutor
    let completer: JobCompleter
    let settings: Worker.Configuration
    let logger: Logger

    func run(stop: StopSignal) async {
        let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        stop.register(wake)
        let running = RunningJobs()
        let graceExpired = OneShotFlag()
        var logger = logger
        logger[metadataKey: "queue"] = "\(queue.name)"

        await withDiscardingTaskGroup { jobs in
            await withTaskGroup(of: Void.self) { timers in
                timers.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: settings.pollInterval)
                        wake.yield()
                    }
                }
                wake.yield()
                var graceArmed = false
                var claimBackoff = Duration.milliseconds(100)
                for await _ in wakeups {
                    if stop.isStopped {
                        if running.count == 0 { break }
                        if graceExpired.isSet {
                            logger.notice("grace period over, stopping running jobs", metadata: ["running": "\(running.count)"])
                            running.stopAll(.shutdown)
                            break
                        }
                        if !graceArmed {
                            graceArmed = true
                            logger.info("waiting for running jobs", metadata: ["running": "\(running.count)", "grace": "\(settings.gracePeriod)"])
                            timers.addTask {
                                try? await Task.sleep(for: settings.gracePeriod)
                                graceExpired.set()
                                wake.yield()
                            }
                        }
                        continue
                    }
                    let free = queue.concurrency - running.count
                    guard free > 0 else { continue }
                    let claimed: [ClaimedJob]
                    do {
                        let t0 = ContinuousClock.now
                        defer { logger.trace("claim", metadata: ["took": "\((ContinuousClock.now - t0))", "free": "\(free)"]) }
                        claimed = try await store.claim(
                            queue: queue.name, limit: free, worker: settings.workerID, lease: settings.lease)
                        claimBackoff = .milliseconds(100)
                    } catch {
                        WorkerMetrics.storeError(operation: "claim")
                        logger.warning("claiming jobs failed, retrying", metadata: ["error": "\(error)", "retry_in": "\(claimBackoff)"])
                        try? await Task.sleep(for: claimBackoff)
                        claimBackoff = min(claimBackoff * 2, .seconds(5))
                        wake.yield()
                        continue
                    }
                    guard !claimed.isEmpty else { continue }
                    WorkerMetrics.claimed(queue: queue.name, count: claimed.count)
                    for job in claimed {
                        let stops = running.start(job.id)
                        jobs.addTask {
                            let resolution = await executor.execute(job, stops: stops)
                            completer.record(job, resolution)
                            running.finish(job.id)
                            wake.yield()
                        }
                    }
                    // A full batch suggests more are waiting: look again without waiting for a wake-up.
                    if claimed.count == free { wake.yield() }
                }
                timers.cancelAll()
            }
        }
    }
}
