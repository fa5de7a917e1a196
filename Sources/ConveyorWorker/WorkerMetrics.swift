import ConveyorCore
import Metrics

/// The worker's swift-metrics instruments. Labels:
///
/// - `conveyor_jobs_total{kind,queue,outcome}`: attempts finished, by outcome
///   (`completed`, `retry`, `dead`, `snoozed`, `cancelled`, `released`).
/// - `conveyor_job_duration_seconds{kind,queue}`: handler run time.
/// - `conveyor_job_wait_seconds{kind,queue}`: how long a job was due before it started (queue latency).
/// - `conveyor_claim_batch_size{queue}`: jobs per claim statement.
/// - `conveyor_direct_starts_total{queue}`: jobs an ingester of the process inserted already claimed.
/// - `conveyor_completion_flush_size`, `conveyor_completion_flush_seconds`: completer batches.
/// - `conveyor_completion_stale_total`: results dropped because the job was no longer held at that attempt.
/// - `conveyor_store_errors_total{operation}`: failed claims, flushes and heartbeats (retried).
/// - `conveyor_heartbeat_jobs`: jobs whose leases one heartbeat renewed.
///
/// The `kind` label is the job's kind only for kinds with a handler here; every other kind is
/// labelled ``unknownKindLabel``. Producers choose kinds freely, and each label value is a time series
/// the process keeps forever: 5,000 made-up kinds grew `/metrics` to 6 MB.
struct WorkerMetrics: Sendable {
    /// The `kind` label of jobs whose kind no handler knows; not a valid kind name, so no clash.
    static let unknownKindLabel = "(unknown)"

    /// Where the instruments are made: the process's `MetricsSystem` unless a test injects its own.
    let factory: any MetricsFactory
    /// Whether a handler is registered for a kind.
    let isKnownKind: @Sendable (String) -> Bool

    private func label(_ kind: String) -> String { isKnownKind(kind) ? kind : Self.unknownKindLabel }

    /// `conveyor_chunk_size{kind}`: jobs per chunk handler call.
    func chunkRan(kind: String, size: Int) {
        Recorder(label: "conveyor_chunk_size", dimensions: [("kind", label(kind))], factory: factory).record(size)
    }

    func jobFinished(kind: String, queue: String, resolution: JobResolution, duration: Duration) {
        let kind = label(kind)
        Counter(label: "conveyor_jobs_total", dimensions: [("kind", kind), ("queue", queue), ("outcome", resolution.metricName)], factory: factory)
            .increment()
        Timer(label: "conveyor_job_duration_seconds", dimensions: [("kind", kind), ("queue", queue)], factory: factory)
            .recordNanoseconds(duration.nanoseconds)
        if case .completeWithResult(let json) = resolution {
            Recorder(label: "conveyor_job_result_bytes", dimensions: [("kind", kind)], factory: factory).record(json.utf8.count)
        }
    }

    /// Progress reports written with a heartbeat (coalesced: the latest per job).
    func progressWritten(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "conveyor_progress_writes_total", factory: factory).increment(by: count)
    }

    func claimed(queue: String, jobs: [ClaimedJob]) {
        Recorder(label: "conveyor_claim_batch_size", dimensions: [("queue", queue)], factory: factory).record(jobs.count)
        waited(jobs)
    }

    func started(queue: String, jobs: [ClaimedJob]) {
        Counter(label: "conveyor_direct_starts_total", dimensions: [("queue", queue)], factory: factory).increment(by: jobs.count)
        waited(jobs)
    }

    /// How long each job was due before it started: the queue's latency, the figure to alert on.
    private func waited(_ jobs: [ClaimedJob]) {
        for job in jobs {
            Timer(label: "conveyor_job_wait_seconds", dimensions: [("kind", label(job.kind)), ("queue", job.queue)], factory: factory)
                .recordNanoseconds(job.waited.nanoseconds)
        }
    }

    func flushed(count: Int, duration: Duration, stale: Int) {
        Recorder(label: "conveyor_completion_flush_size", factory: factory).record(count)
        Timer(label: "conveyor_completion_flush_seconds", factory: factory).recordNanoseconds(duration.nanoseconds)
        if stale > 0 { Counter(label: "conveyor_completion_stale_total", factory: factory).increment(by: stale) }
    }

    func heartbeat(jobs: Int) {
        Recorder(label: "conveyor_heartbeat_jobs", factory: factory).record(jobs)
    }

    func storeError(operation: String) {
        Counter(label: "conveyor_store_errors_total", dimensions: [("operation", operation)], factory: factory).increment()
    }
}

extension JobResolution {
    /// The `outcome` label of `conveyor_jobs_total`.
    var metricName: String {
        switch self {
        case .complete, .completeWithResult: "completed"
        case .retry: "retry"
        case .dead: "dead"
        case .snooze: "snoozed"
        case .cancel: "cancelled"
        case .release: "released"
        case .throttle: "throttled"
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
