import ConveyorCore
import Logging

/// Runs one attempt of a claimed job: decodes its args, runs its handler under the kind's timeout,
/// honours a stop request, and resolves the attempt into the job's next state.
struct JobExecutor: Sendable {
    let registry: HandlerRegistry
    let random: any RandomSource
    let logger: Logger

    private enum Race: Sendable {
        case finished(AttemptResult)
        case timedOut
        case stopped(StopReason)
    }

    /// Runs `job` and returns its resolution; never throws (every failure is a resolution).
    func execute(_ job: ClaimedJob, stops: AsyncStream<StopReason>) async -> JobResolution {
        var logger = logger
        logger[metadataKey: "job_id"] = "\(job.id)"
        logger[metadataKey: "kind"] = "\(job.kind)"
        logger[metadataKey: "attempt"] = "\(job.attempt)"
        logger[metadataKey: "queue"] = "\(job.queue)"

        guard let entry = registry[job.kind] else {
            let message = "no handler is registered for kind \(job.kind)"
            logger.error("job dead-lettered: \(message)")
            return .dead(FailureRecord(message: message, kind: .unknownKind))
        }
        let context = JobContext(
            id: job.id, kind: job.kind, queue: job.queue, attempt: job.attempt, maxAttempts: job.maxAttempts,
            logger: logger)
        let timeout = entry.options.timeout
        logger.debug("job started")
        let started = ContinuousClock.now
        let race = await withTaskGroup(of: Race?.self) { group -> Race in
            group.addTask {
                do {
                    return .finished(.outcome(try await entry.run(job.args, context)))
                } catch let error as HandlerRegistry.ArgumentsError {
                    return .finished(.failed(message: error.description, kind: .badArgs))
                } catch {
                    return .finished(AttemptResult(error: error))
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                } catch {
                    return nil
                }
            }
            group.addTask {
                for await reason in stops { return .stopped(reason) }
                return nil
            }
            var winner: Race = .finished(.failed(message: "attempt ended without a result", kind: .error))
            while let next = await group.next() {
                if let next {
                    winner = next
                    break
                }
            }
            group.cancelAll()
            return winner
        }
        let result: AttemptResult
        switch race {
        case .finished(let finished): result = finished
        case .timedOut: result = .failed(message: "timed out after \(timeout)", kind: .timeout)
        case .stopped(.shutdown): result = .interrupted
        }
        let resolution = JobResolution.resolve(
            result, attempt: job.attempt, maxAttempts: job.maxAttempts, policy: entry.options.retry, random: random)
        let elapsed = ContinuousClock.now - started
        WorkerMetrics.jobFinished(kind: job.kind, queue: job.queue, resolution: resolution, duration: elapsed)
        log(resolution, elapsed: elapsed, logger: logger)
        return resolution
    }

    private func log(_ resolution: JobResolution, elapsed: Duration, logger: Logger) {
        switch resolution {
        case .complete:
            logger.debug("job completed", metadata: ["duration": "\(elapsed)"])
        case .retry(let after, let failure):
            logger.warning(
                "job failed, will retry",
                metadata: ["error": "\(failure.message)", "failure": "\(failure.kind.rawValue)", "retry_in": "\(after)"])
        case .dead(let failure):
            logger.error(
                "job dead-lettered",
                metadata: ["error": "\(failure.message)", "failure": "\(failure.kind.rawValue)"])
        case .snooze(let after):
            logger.info("job snoozed", metadata: ["snooze": "\(after)"])
        case .cancel(let reason):
            logger.info("job cancelled by its handler", metadata: ["reason": "\(reason)"])
        case .release:
            logger.notice("job interrupted by shutdown, returned to its queue")
        }
    }
}
