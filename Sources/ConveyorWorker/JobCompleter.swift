import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging
import Synchronization

/// Buffers attempt results and writes them in batches, one statement per flush (so a flush is atomic
/// and its stale count true).
///
/// A batch is flushed when it reaches ``Configuration/maxBatch`` or after ``Configuration/linger``
/// (so low rates still write in batches, not one id per statement); under load, a batch that
/// gathered during one flush is written by the next one at once. Writes are fenced by attempt:
/// results of a job that was claimed again meanwhile are dropped and counted as stale.
///
/// Results waiting here are still the worker's: ``held()`` lists them, and the heartbeat keeps their
/// leases, so a slow or failing write (PostgreSQL away longer than the lease) does not make the
/// rescuer run finished jobs again. The buffer is bounded: at ``Configuration/maxBacklog`` results,
/// ``record(_:_:)`` waits, which keeps the job's slot taken and so stops its producer from claiming.
/// A result PostgreSQL refuses is isolated and written alone, in a safe form if need be.
final class JobCompleter: Sendable {
    /// Batching settings.
    struct Configuration: Sendable {
        /// The most results per flush. Default 500.
        var maxBatch = 500
        /// How long a partial batch waits for company. Default 5 ms.
        var linger: Duration = .milliseconds(5)
        /// The most results buffered before ``record(_:_:)`` waits. Default 10 × ``maxBatch``.
        var maxBacklog: Int?
        /// How long, once the worker is stopping, writes are retried before the results left are given
        /// up (their leases bring the jobs back). Default 10 s.
        var flushDeadline: Duration = .seconds(10)
        /// Told what each flush wrote (``Worker/Configuration/onResultsWritten``).
        var onWritten: (@Sendable ([WrittenResult]) -> Void)?
    }

    struct Pending: Sendable {
        var job: ClaimedJob
        var resolution: JobResolution
    }

    private struct Buffer {
        var items: [Pending] = []
        /// The batch being written.
        var inFlight: [Pending] = []
        var finishing = false
        /// Past this instant, failed writes are given up (set once the worker is stopping).
        var deadline: ContinuousClock.Instant?
        /// Writes were given up at shutdown: nothing waits for room any more.
        var abandoned = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var unwritten = 0
    }

    private let store: PostgresJobStore
    private let configuration: Configuration
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let buffer = Mutex(Buffer())
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(store: PostgresJobStore, configuration: Configuration, metrics: WorkerMetrics, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    private var maxBacklog: Int { configuration.maxBacklog ?? max(1, configuration.maxBatch) * 10 }

    /// Adds a result to the next flush, first waiting while the buffer is full.
    func record(_ job: ClaimedJob, _ resolution: JobResolution) async {
        await waitForRoom()
        recordNow(job, resolution)
    }

    /// Adds a result without waiting for room (results that hold no slot: claimed jobs given back at once).
    func recordNow(_ job: ClaimedJob, _ resolution: JobResolution) {
        let count = buffer.withLock { buffer -> Int in
            buffer.items.append(Pending(job: job, resolution: resolution))
            return buffer.items.count
        }
        if count == 1 || count >= configuration.maxBatch { signal.continuation.yield() }
    }

    /// The jobs whose results wait here, at their attempts (the heartbeat renews their leases).
    func held() -> [(id: UUID, attempt: Int)] {
        buffer.withLock { buffer in (buffer.inFlight + buffer.items).map { (id: $0.job.id, attempt: $0.job.attempt) } }
    }

    /// Results waiting to be written.
    var backlog: Int { buffer.withLock { $0.items.count + $0.inFlight.count } }

    /// Whether a result may be added: the buffered and the in-flight ones count, so at most
    /// ``Configuration/maxBacklog`` results wait while writes fail.
    private func hasRoom(_ buffer: Buffer) -> Bool { buffer.items.count + buffer.inFlight.count < maxBacklog || buffer.abandoned }

    private func waitForRoom() async {
        let id = buffer.withLock { buffer -> UInt64? in
            guard !hasRoom(buffer) else { return nil }
            buffer.nextWaiter += 1
            return buffer.nextWaiter
        }
        guard let id else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = buffer.withLock { buffer -> Bool in
                    if hasRoom(buffer) || Task.isCancelled { return true }
                    buffer.waiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            buffer.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    private func wakeWaiters() {
        let waiters = buffer.withLock { buffer -> [CheckedContinuation<Void, Never>] in
            guard hasRoom(buffer) else { return [] }
            defer { buffer.waiters = [:] }
            return Array(buffer.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The worker began stopping: writes are retried until `grace` plus ``Configuration/flushDeadline``
    /// from now at most. Past that, finished jobs waiting for room no longer wait, so the worker can stop
    /// even while the database is away.
    func stopping(grace: Duration) {
        let deadline = ContinuousClock.now + grace + configuration.flushDeadline
        buffer.withLock { buffer in buffer.deadline = min(buffer.deadline ?? deadline, deadline) }
    }

    /// Flushes what is left and makes ``run()`` return; from now on writes are retried for at most
    /// ``Configuration/flushDeadline``.
    func finish() {
        let deadline = ContinuousClock.now + configuration.flushDeadline
        buffer.withLock { buffer in
            buffer.finishing = true
            buffer.deadline = min(buffer.deadline ?? deadline, deadline)
        }
        signal.continuation.yield()
    }

    /// Flushes batches until ``finish()`` is called and the buffer is empty, or the task is cancelled;
    /// returns how many results could not be written.
    func run() async -> Int {
        for await _ in signal.stream {
            // Linger when results start arriving after a quiet spell, or trickle in. When a flush's
            // round trip already gathered a real batch (a tenth of the maximum), write it at once:
            // waiting again capped completions at one batch per (linger + flush), ~11k jobs/s.
            var busy = false
            while true {
                let (count, finishing) = buffer.withLock { ($0.items.count, $0.finishing) }
                if count == 0 {
                    if finishing { return buffer.withLock { $0.unwritten } }
                    break
                }
                let gathered = busy && count >= max(1, configuration.maxBatch / 10)
                if count < configuration.maxBatch && !finishing && !gathered {
                    try? await Task.sleep(for: configuration.linger)
                }
                busy = true
                let batch = buffer.withLock { buffer -> [Pending] in
                    let taken = Array(buffer.items.prefix(configuration.maxBatch))
                    buffer.items.removeFirst(taken.count)
                    buffer.inFlight = taken
                    return taken
                }
                wakeWaiters()
                await flush(batch)
                buffer.withLock { $0.inFlight = [] }
                wakeWaiters()
            }
        }
        return buffer.withLock { $0.unwritten + $0.items.count }
    }

    /// Whether writes should stop being retried: cancelled, or stopping and past the deadline.
    private var givingUp: Bool {
        if Task.isCancelled { return true }
        return buffer.withLock { buffer in buffer.deadline.map { ContinuousClock.now >= $0 } ?? false }
    }

    /// The time left before the deadline, if one is set.
    private var untilDeadline: Duration? {
        buffer.withLock { buffer in buffer.deadline.map { max(.zero, $0 - ContinuousClock.now) } }
    }

    /// Writes one batch, retrying with backoff while the database is unreachable. When stopping, it
    /// gives up at the flush deadline: the jobs stay `running` and their expired leases bring them back.
    private func flush(_ batch: [Pending]) async {
        var delay = Duration.milliseconds(50)
        while true {
            do {
                let started = ContinuousClock.now
                let written = try await store.record(batch.map { (id: $0.job.id, attempt: $0.job.attempt, resolution: $0.resolution) })
                reportWritten(batch, ids: Set(written), duration: ContinuousClock.now - started)
                return
            } catch ConveyorStoreError.invalidData(let message) {
                // PostgreSQL refused a value (should not happen: results are made storable). Write them
                // one by one, so one cannot hold the others back.
                logger.error("the database refused a result in a flush; writing them one by one", metadata: ["error": "\(message)"])
                await isolate(batch)
                return
            } catch {
                metrics.storeError(operation: "complete")
                if givingUp {
                    abandon(batch, error: error)
                    return
                }
                let wait = min(delay, untilDeadline ?? delay)
                logger.warning("recording job results failed, retrying", metadata: ["error": "\(error)", "retry_in": "\(wait.readable)"])
                try? await Task.sleep(for: wait)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Writes each result of `batch` alone; one refused alone is written as a failure that says so,
    /// and given up when even that is refused.
    private func isolate(_ batch: [Pending]) async {
        for pending in batch {
            var attempt = pending
            for round in 0..<2 {
                do {
                    let started = ContinuousClock.now
                    let written = try await store.record([(id: attempt.job.id, attempt: attempt.job.attempt, resolution: attempt.resolution)])
                    reportWritten([attempt], ids: Set(written), duration: ContinuousClock.now - started)
                    break
                } catch let error as ConveyorStoreError where round == 0 {
                    if case .invalidData = error {
                        let failure = FailureRecord(message: "the result of this attempt could not be recorded: \(error)", kind: .error)
                        attempt.resolution = pending.job.attempt < pending.job.maxAttempts ? .retry(after: .seconds(60), failure) : .dead(failure)
                        continue
                    }
                    abandon([pending], error: error)
                    break
                } catch {
                    abandon([pending], error: error)
                    break
                }
            }
        }
    }

    private func abandon(_ batch: [Pending], error: any Error) {
        let total = buffer.withLock { buffer -> Int in
            buffer.unwritten += batch.count
            if buffer.deadline != nil { buffer.abandoned = true }
            return buffer.unwritten
        }
        wakeWaiters()
        logger.error(
            "could not record job results; their leases will return the jobs",
            metadata: [
                "count": "\(batch.count)", "unwritten_total": "\(total)", "error": "\(error)",
                "job_ids": "\(batch.prefix(20).map(\.job.id.uuidString).joined(separator: ","))",
            ])
    }

    private func reportWritten(_ batch: [Pending], ids: Set<UUID>, duration: Duration) {
        let stale = batch.count - ids.count
        if stale > 0 {
            logger.warning("results dropped: the jobs were no longer held at these attempts", metadata: ["count": "\(stale)"])
        }
        logger.trace("flush", metadata: ["n": "\(batch.count)", "took": "\(duration)"])
        metrics.flushed(count: batch.count, duration: duration, stale: stale)
        if let onWritten = configuration.onWritten {
            onWritten(batch.filter { ids.contains($0.job.id) }.map {
                WrittenResult(id: $0.job.id, kind: $0.job.kind, queue: $0.job.queue, attempt: $0.job.attempt, resolution: $0.resolution)
            })
        }
    }
}
