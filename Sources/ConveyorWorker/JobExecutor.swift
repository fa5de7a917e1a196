import ConveyorCore
import Foundation
import Logging
import Synchronization

/// Runs one attempt of a claimed job: decodes its args, runs its handler under the kind's timeout,
/// honours a stop request, and resolves the attempt into the job's next state.
struct JobExecutor: Sendable {
    let registry: HandlerRegistry
    let random: any RandomSource
    let metrics: WorkerMetrics
    let logger: Logger
    /// Where handlers' progress reports wait for the lease keeper to write them.
    let progress: ProgressBuffer
    /// Where handlers' follow-up jobs go.
    var enqueuer: (any JobEnqueuer)? = nil

    enum Race: Sendable {
        case finished(AttemptResult)
        case stopped(StopReason)
    }

    /// Runs `handler` until it returns or `stop` fires, whichever comes first.
    ///
    /// The handler runs in a task of its own that is cancelled when the stop wins, but not awaited:
    /// a handler that ignores cancellation must not hold the worker (a timeout, a cancellation, or a
    /// shutdown's grace period would mean nothing). Such a handler is abandoned and logged; its result,
    /// if it ever comes, is discarded. This is the one unstructured task in the worker, on purpose.
    static func race(stop: StopChannel, handler: @escaping @Sendable () async -> AttemptResult) async -> Race {
        let finish = RaceResult()
        let handlerTask = Task {
            finish.set(.finished(await handler()))
        }
        stop.onStop { reason in finish.set(.stopped(reason)) }
        return await withTaskCancellationHandler {
            let winner = await finish.wait()
            if case .stopped = winner { handlerTask.cancel() }
            return winner
        } onCancel: {
            finish.set(.stopped(.shutdown))
            handlerTask.cancel()
        }
    }

    /// The kind's timeout, or the default for kinds without a handler.
    func timeout(for kind: String) -> Duration {
        registry[kind]?.options.timeout ?? JobKindOptions().timeout
    }

    /// Runs `job` until its handler returns or `stop` fires (timeout, shutdown), and returns its
    /// resolution; never throws (every failure is a resolution).
    func execute(_ job: ClaimedJob, stop: StopChannel) async -> JobResolution {
        let (id, kind, attempt, queue) = (job.id, job.kind, job.attempt, job.queue)
        let base = self.logger.handler
        let logger = Logger(label: self.logger.label) { _ in
            JobLogHandler(base: base) {
                ["job_id": "\(id)", "kind": "\(kind)", "attempt": "\(attempt)", "queue": "\(queue)"]
            }
        }

        guard let entry = registry[job.kind] else {
            let message = "no handler is registered for kind \(job.kind)"
            logger.error("job dead-lettered: \(message)")
            let resolution = JobResolution.dead(FailureRecord(message: message, kind: .unknownKind))
            metrics.jobFinished(kind: job.kind, queue: job.queue, resolution: resolution, duration: .zero)
            return resolution
        }
        let progress = self.progress
        let context = JobContext(
            id: job.id, kind: job.kind, queue: job.queue, attempt: job.attempt, maxAttempts: job.maxAttempts,
            logger: logger, progress: { progress.report(id, attempt: attempt, $0) }, enqueuer: enqueuer)
        logger.debug("job started")
        let started = ContinuousClock.now
        let race = await Self.race(stop: stop) {
            do {
                return .outcome(try await entry.run(job.args, context))
            } catch let error as HandlerRegistry.ArgumentsError {
                return .failed(message: error.description, kind: .badArgs)
            } catch {
                return AttemptResult(error: error)
            }
        }
        let result: AttemptResult
        switch race {
        case .finished(let finished): result = finished
        case .stopped(.timeout(let limit)): result = .failed(message: "timed out after \(limit)", kind: .timeout)
        case .stopped(.shutdown): result = .interrupted
        case .stopped(.cancelled(let reason)): result = .outcome(.cancel(reason: reason))
        case .stopped(.leaseLost):
            // Another worker may already run it again; whatever is written now is fenced off by attempt.
            logger.warning("job stopped: its lease was lost (rescued, or not renewed in time)")
            result = .interrupted
        }
        var resolution = JobResolution.resolve(
            result, attempt: job.attempt, maxAttempts: job.maxAttempts, policy: entry.options.retry, random: random)
        if case .throttle("", let until, let reason) = resolution, let key = job.limitKey {
            // No key named: the job's own.
            resolution = .throttle(key: key, until: until, reason: reason)
        }
        let elapsed = ContinuousClock.now - started
        metrics.jobFinished(kind: job.kind, queue: job.queue, resolution: resolution, duration: elapsed)
        log(resolution, elapsed: elapsed, logger: logger)
        return resolution
    }

    /// Runs a chunk of jobs of one chunk kind in one handler call, and returns each job's resolution,
    /// in the order given; never throws. The chunk stops as a whole on its timeout, shutdown or a lost
    /// lease (every job's stop leads to it: they started together); a job cancelled meanwhile ends
    /// `cancelled` whatever the handler returns for it; a job the handler returns nothing for fails
    /// with "no outcome" and is retried.
    func executeChunk(_ jobs: [(job: ClaimedJob, stop: StopChannel)]) async -> [JobResolution] {
        guard let first = jobs.first?.job, let entry = registry[first.kind], let runChunk = entry.runChunk else {
            var results: [JobResolution] = []
            for (job, stop) in jobs { results.append(await execute(job, stop: stop)) }
            return results
        }
        let (kind, queue) = (first.kind, first.queue)
        let base = self.logger.handler
        let size = jobs.count
        let logger = Logger(label: self.logger.label) { _ in
            JobLogHandler(base: base) { ["kind": "\(kind)", "queue": "\(queue)", "chunk": "\(size)"] }
        }
        let chunkStop = StopChannel()
        let cancelled = Mutex<[UUID: String]>([:])
        for (job, stop) in jobs {
            let id = job.id
            stop.onStop { reason in
                if case .cancelled(let why) = reason {
                    cancelled.withLock { $0[id] = why }
                } else {
                    chunkStop.stop(reason)
                }
            }
        }
        let returned = Mutex<(results: [UUID: ChunkResult], undecodable: [UUID: String])?>(nil)
        let context = ChunkContext(kind: kind, queue: queue, logger: logger, enqueuer: enqueuer)
        let inputs = jobs.map { (id: $0.job.id, attempt: $0.job.attempt, args: $0.job.args) }
        logger.debug("chunk started")
        let started = ContinuousClock.now
        let race = await Self.race(stop: chunkStop) {
            do {
                let result = try await runChunk(inputs, context)
                returned.withLock { $0 = result }
                return .outcome(.completed)
            } catch {
                return AttemptResult(error: error)
            }
        }
        let elapsed = ContinuousClock.now - started
        let answer = returned.withLock { $0 }
        var resolutions: [JobResolution] = []
        for (job, _) in jobs {
            let result: AttemptResult
            if let why = cancelled.withLock({ $0[job.id] }) {
                result = .outcome(.cancel(reason: why))
            } else {
                switch race {
                case .finished(let finished):
                    if let answer {
                        if let message = answer.undecodable[job.id] {
                            result = .failed(message: "args do not decode: \(message)", kind: .badArgs)
                        } else {
                            result = answer.results[job.id]?.attemptResult
                                ?? .failed(message: "no outcome: the chunk handler returned none for this job", kind: .error)
                        }
                    } else {
                        result = finished
                    }
                case .stopped(.timeout(let limit)): result = .failed(message: "timed out after \(limit) (the chunk of \(size))", kind: .timeout)
                case .stopped(.shutdown), .stopped(.leaseLost): result = .interrupted
                case .stopped(.cancelled(let why)): result = .outcome(.cancel(reason: why))
                }
            }
            var resolution = JobResolution.resolve(
                result, attempt: job.attempt, maxAttempts: job.maxAttempts, policy: entry.options.retry, random: random)
            if case .throttle("", let until, let reason) = resolution, let key = job.limitKey {
                resolution = .throttle(key: key, until: until, reason: reason)
            }
            metrics.jobFinished(kind: job.kind, queue: job.queue, resolution: resolution, duration: elapsed)
            resolutions.append(resolution)
        }
        metrics.chunkRan(kind: kind, size: size)
        logger.debug("chunk finished", metadata: ["duration": "\(elapsed.readable)"])
        return resolutions
    }

    private func log(_ resolution: JobResolution, elapsed: Duration, logger: Logger) {
        switch resolution {
        case .complete:
            logger.debug("job completed", metadata: ["duration": "\(elapsed.readable)"])
        case .completeWithResult(let json):
            logger.debug("job completed", metadata: ["duration": "\(elapsed.readable)", "result_bytes": "\(json.utf8.count)"])
        case .retry(let after, let failure):
            logger.warning(
                "job failed, will retry",
                metadata: ["error": "\(failure.message)", "failure": "\(failure.kind.rawValue)", "retry_in": "\(after.readable)"])
        case .dead(let failure):
            logger.error(
                "job dead-lettered",
                metadata: ["error": "\(failure.message)", "failure": "\(failure.kind.rawValue)"])
        case .snooze(let after):
            logger.info("job snoozed", metadata: ["snooze": "\(after.readable)"])
        case .cancel(let reason):
            logger.info("job cancelled by its handler", metadata: ["reason": "\(reason)"])
        case .release:
            logger.notice("job interrupted by shutdown, returned to its queue")
        case .throttle(let key, let until, let reason):
            logger.notice(
                "job throttled: its key is paused, the attempt not spent",
                metadata: ["limit_key": "\(key)", "until": "\(RFC3339.format(until))", "reason": "\(reason)"])
        }
    }
}
