import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging
import Synchronization

/// Buffers attempt results and writes them in batches: one statement for completions, one for the rest.
///
/// A batch is flushed when it reaches ``Configuration/maxBatch`` or after ``Configuration/linger``
/// (so low rates still write in batches, not one id per statement); under load, a batch that
/// gathered during one flush is written by the next one at once. Writes are fenced by attempt:
/// results of a job that was claimed again meanwhile are dropped and counted as stale.
final class JobCompleter: Sendable {
    /// Batching settings.
    struct Configuration: Sendable {
        /// The most results per flush. Default 500.
        var maxBatch = 500
        /// How long a partial batch waits for company. Default 5 ms.
        var linger: Duration = .milliseconds(5)
        /// Told what each flush wrote (``Worker/Configuration/onResultsWritten``).
        var onWritten: (@Sendable ([WrittenResult]) -> Void)?
    }

    struct Pending: Sendable {
        var job: ClaimedJob
        var resolution: JobResolution
    }

    private struct Buffer {
        var items: [Pending] = []
        var finishing = false
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

    /// Adds a result to the next flush.
    func record(_ job: ClaimedJob, _ resolution: JobResolution) {
        let count = buffer.withLock { buffer -> Int in
            buffer.items.append(Pending(job: job, resolution: resolution))
            return buffer.items.count
        }
        if count == 1 || count >= configuration.maxBatch { signal.continuation.yield() }
    }

    /// Flushes what is left and makes ``run()`` return.
    func finish() {
        buffer.withLock { $0.finishing = true }
        signal.continuation.yield()
    }

    /// Flushes batches until ``finish()`` is called and the buffer is empty, or the task is cancelled.
    func run() async {
        for await _ in signal.stream {
            // Linger when results start arriving after a quiet spell, or trickle in. When a flush's
            // round trip already gathered a real batch (a tenth of the maximum), write it at once:
            // waiting again capped completions at one batch per (linger + flush), ~11k jobs/s.
            var busy = false
            while true {
                let (count, finishing) = buffer.withLock { ($0.items.count, $0.finishing) }
                if count == 0 {
                    if finishing { return }
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
                    return taken
                }
                await flush(batch, finishing: finishing)
            }
        }
    }

    /// Writes one batch, retrying with backoff while the database is unreachable. When shutting down it
    /// gives up after a few tries: the jobs stay `running` and their expired leases bring them back.
    private func flush(_ batch: [Pending], finishing: Bool) async {
        var delay = Duration.milliseconds(50)
        var tries = 0
        while true {
            tries += 1
            do {
                let started = ContinuousClock.now
                let completions = batch.filter { $0.resolution == .complete }.map { (id: $0.job.id, attempt: $0.job.attempt) }
                let others = batch.filter { $0.resolution != .complete }
                    .map { (id: $0.job.id, attempt: $0.job.attempt, resolution: $0.resolution) }
                let completed = try await store.complete(completions)
                let resolved = try await store.resolve(others)
                let written = completed.count + resolved.count
                let stale = batch.count - written
                if stale > 0 {
                    logger.warning("results dropped: the jobs were no longer held at these attempts", metadata: ["count": "\(stale)"])
                }
                logger.trace("flush", metadata: ["n": "\(batch.count)", "took": "\(ContinuousClock.now - started)"])
                metrics.flushed(count: batch.count, duration: ContinuousClock.now - started, stale: stale)
                if let onWritten = configuration.onWritten {
                    let ids = Set(completed).union(resolved)
                    onWritten(batch.filter { ids.contains($0.job.id) }.map {
                        WrittenResult(id: $0.job.id, kind: $0.job.kind, queue: $0.job.queue, attempt: $0.job.attempt, resolution: $0.resolution)
                    })
                }
                return
            } catch {
                metrics.storeError(operation: "complete")
                if Task.isCancelled || (finishing && tries >= 5) {
                    logger.error(
                        "could not record job results; their leases will return them",
                        metadata: ["count": "\(batch.count)", "error": "\(error)"])
                    return
                }
                logger.warning("recording job results failed, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay.readable)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
