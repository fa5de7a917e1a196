import ConveyorCore
import ConveyorPostgres
import Logging

/// Claims jobs of one queue — never more than it has free slots — and runs each in a child task.
///
/// Claims run in the background, at most ``maxClaimsInFlight`` at a time, so the next batch is on its
/// way while the last one runs. While jobs run, a claim for fewer than half the slots starts at most
/// once per ``Worker/Configuration/claimCooldown``, so slots freed one by one are refilled in batches;
/// once half the slots are free the claim goes at once (short jobs otherwise wait on the cooldown: at
/// concurrency 100 it capped the runtime near 100 jobs per 5 ms). After a
/// claim comes back short (the queue is drained), finished jobs no longer trigger claims; the poll
/// interval does, until work is found again.
///
/// On shutdown it stops claiming, lets running jobs finish within the grace period, then stops the
/// rest, which go back to `available` without spending an attempt.
///
/// Jobs an ingester of this process inserted already claimed (``DirectStarts``) arrive as `.started`
/// and run the same way; the producer publishes its slots and whether the queue is drained through
/// ``QueueSlots``, which decides when such direct starts may take slots.
struct QueueProducer: Sendable {
    let queue: QueueConfiguration.Queue
    let store: PostgresJobStore
    let executor: JobExecutor
    let completer: JobCompleter
    let settings: Worker.Configuration
    /// Kinds with cluster-wide limits; claimed under their locks.
    let limits: [String: KindLimit]
    let slots: QueueSlots
    let starts: DirectStarts
    let metrics: WorkerMetrics
    let logger: Logger

    /// Claims started and not yet returned, at most.
    static let maxClaimsInFlight = 2

    /// The producer's loop state (only the loop touches it).
    private struct State {
        var claimsInFlight = 0
        var drain = DrainTracker()
        var nextClaim = ContinuousClock.now
        var timerPending = false
        var backoff = Duration.milliseconds(100)
        var graceArmed = false
        /// Jobs of chunk kinds gathered for their next chunk (started: slot, lease and timeout run).
        var chunks: [String: [(job: ClaimedJob, stop: StopChannel)]] = [:]
        /// Chunk kinds whose partial chunk has a linger timer running.
        var lingering: Set<String> = []
    }

    func run(stop: StopSignal, inbox: ProducerInbox, running: RunningJobs) async {
        stop.register { inbox.wake() }
        let graceExpired = OneShotFlag()
        var logger = logger
        logger[metadataKey: "queue"] = "\(queue.name)"

        await withDiscardingTaskGroup { jobs in
            await withTaskGroup(of: Void.self) { helpers in
                helpers.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: settings.pollInterval)
                        inbox.deliver(.poll)
                    }
                }
                // One watchdog per queue enforces every running job's timeout and lease (one timer, not one per job).
                helpers.addTask {
                    while !Task.isCancelled {
                        running.stopOverdue()
                        try? await Task.sleep(for: settings.timeoutCheckInterval)
                    }
                }
                var state = State()
                /// Runs a chunk of one chunk kind in one child task of `jobs`.
                func launchChunk(_ chunk: [(job: ClaimedJob, stop: StopChannel)]) {
                    guard !chunk.isEmpty else { return }
                    jobs.addTask {
                        let resolutions = await executor.executeChunk(chunk)
                        for ((job, _), resolution) in zip(chunk, resolutions) {
                            await completer.record(job, resolution)
                            running.finish(job.id, attempt: job.attempt)
                        }
                        inbox.wake()
                    }
                }
                /// Runs claimed (or directly started) jobs, each in a child task of `jobs`; jobs of chunk
                /// kinds join their kind's next chunk, which runs when full or after its linger.
                func launch(_ claimed: [ClaimedJob], sent: ContinuousClock.Instant) {
                    for job in claimed {
                        if stop.isStopped {
                            // Claimed while the shutdown began: give it back untouched.
                            completer.recordNow(job, .release)
                            continue
                        }
                        let stop = running.start(job, timeout: executor.timeout(for: job.kind), leaseDeadline: sent + settings.lease)
                        if let options = executor.registry[job.kind]?.chunk {
                            state.chunks[job.kind, default: []].append((job, stop))
                            if state.chunks[job.kind, default: []].count >= options.size {
                                launchChunk(state.chunks.removeValue(forKey: job.kind) ?? [])
                            } else if !state.lingering.contains(job.kind) {
                                state.lingering.insert(job.kind)
                                let kind = job.kind
                                helpers.addTask {
                                    try? await Task.sleep(for: options.linger)
                                    inbox.deliver(.linger(kind: kind))
                                }
                            }
                            continue
                        }
                        jobs.addTask {
                            let resolution = await executor.execute(job, stop: stop)
                            // Waits while the completer's backlog is full: the slot stays taken meanwhile.
                            await completer.record(job, resolution)
                            running.finish(job.id, attempt: job.attempt)
                            inbox.wake()
                        }
                    }
                }
                inbox.deliver(.poll)
                for await event in inbox.events {
                    switch event {
                    case .wake:
                        inbox.wakeReceived()
                    case .poll:
                        state.drain.workAnnounced()
                    case .claimed(let claimed, let requested, let sent, let token):
                        state.claimsInFlight -= 1
                        state.backoff = .milliseconds(100)
                        state.drain.claimReturned(token: token, count: claimed.count, requested: requested)
                        if !claimed.isEmpty { metrics.claimed(queue: queue.name, jobs: claimed) }
                        logger.trace(
                            "claim", metadata: ["n": "\(claimed.count)", "requested": "\(requested)", "took": "\(ContinuousClock.now - sent)"])
                        launch(claimed, sent: sent)
                        slots.claimReturned(requested)
                    case .started(let started, let reserved, let sent):
                        if !started.isEmpty { metrics.started(queue: queue.name, jobs: started) }
                        logger.trace("direct start", metadata: ["n": "\(started.count)", "reserved": "\(reserved)", "took": "\(ContinuousClock.now - sent)"])
                        launch(started, sent: sent)
                        slots.startReturned(reserved)
                    case .linger(let kind):
                        state.lingering.remove(kind)
                        launchChunk(state.chunks.removeValue(forKey: kind) ?? [])
                    case .claimFailed(let requested, let error):
                        state.claimsInFlight -= 1
                        slots.claimReturned(requested)
                        metrics.storeError(operation: "claim")
                        logger.warning("claiming jobs failed, retrying", metadata: ["error": "\(error)", "retry_in": "\(state.backoff.readable)"])
                        state.nextClaim = ContinuousClock.now + state.backoff
                        state.backoff = min(state.backoff * 2, .seconds(5))
                    }
                    slots.update(drained: state.drain.isDrained, stopped: stop.isStopped)
                    starts.signal()

                    if stop.isStopped {
                        // Partial chunks run now: their jobs are started, and the grace period applies to them.
                        for kind in Array(state.chunks.keys) { launchChunk(state.chunks.removeValue(forKey: kind) ?? []) }
                        if running.count == 0 && state.claimsInFlight == 0 && slots.startReserved == 0 { break }
                        if graceExpired.isSet {
                            if running.count > 0 {
                                logger.notice("grace period over, stopping running jobs", metadata: ["running": "\(running.count)"])
                                running.stopAll(.shutdown)
                            }
                            if state.claimsInFlight == 0 && slots.startReserved == 0 { break }
                            continue
                        }
                        if !state.graceArmed {
                            state.graceArmed = true
                            logger.info("waiting for running jobs", metadata: ["running": "\(running.count)", "grace": "\(settings.gracePeriod.readable)"])
                            helpers.addTask {
                                try? await Task.sleep(for: settings.gracePeriod)
                                graceExpired.set()
                                inbox.wake()
                            }
                        }
                        continue
                    }

                    let free = slots.free
                    guard free > 0, state.claimsInFlight < Self.maxClaimsInFlight, !state.drain.isDrained else { continue }
                    let now = ContinuousClock.now
                    // Half the slots free is a batch worth a round trip: claim at once. Fewer wait out the
                    // cooldown, so slots freed one by one are refilled together.
                    if now < state.nextClaim && free < max(1, queue.concurrency / 2) {
                        if !state.timerPending {
                            state.timerPending = true
                            let deadline = state.nextClaim
                            helpers.addTask {
                                try? await Task.sleep(until: deadline)
                                inbox.wake()
                            }
                        }
                        continue
                    }
                    state.timerPending = false
                    // Reserved under the lock direct starts share: they may have taken slots since `free` was read.
                    let requested = slots.reserveClaim(upTo: free)
                    guard requested > 0 else { continue }
                    // Busy: wait out the cooldown before the next claim; idle: claim at once.
                    if running.count > 0 || state.claimsInFlight > 0 { state.nextClaim = now + settings.claimCooldown }
                    state.claimsInFlight += 1
                    let token = state.drain.claimToken
                    helpers.addTask {
                        do {
                            let sent = ContinuousClock.now
                            let claimed = try await store.claim(
                                queue: queue.name, limit: requested, worker: settings.workerID, lease: settings.lease, limits: limits)
                            inbox.deliver(.claimed(claimed, requested: requested, sent: sent, token: token))
                        } catch {
                            inbox.deliver(.claimFailed(requested: requested, error: "\(error)"))
                        }
                    }
                }
                helpers.cancelAll()
            }
        }
    }
}
