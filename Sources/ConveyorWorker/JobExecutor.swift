import ConveyorCore
import Logging

/// Runs one attempt of a claimed job: decodes its args, runs its handler under the kind's timeout,
/// honours a stop request, and resolves the attempt into the job's next state.
struct JobExecutor: Sendable {
    let registry: HandlerRegistry
    let random: any RandomSource
    let metrics: WorkerMetrics
    let logger: Logger
    /// Where handlers' progress reports wait for the lease keeper to write them.
    let progress: ProgressBuffer

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
            logger: logger, progress: { progress.report(id, attempt: attempt, $0) })
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
