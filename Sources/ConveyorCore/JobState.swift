/// The lifecycle state of a job, mirrored by the PostgreSQL enum `conveyor_job_state`.
///
/// ```
/// available ──claim──▶ running ──complete──▶ completed
///     ▲                   │ ├──fail, attempts left──▶ available (run_at = now + backoff)
///     │                   │ ├──fail, attempts spent / permanent──▶ dead
///     └──snooze/shutdown──┘ └──cancel──▶ cancelled
/// ```
/// `completed`, `dead` and `cancelled` are final until an operator retries a job.
public enum JobState: String, CaseIterable, Sendable, Codable, Hashable {
    /// Waiting to be claimed, possibly with a `run_at` in the future.
    case available
    /// Claimed by a worker, which holds it until it records a result.
    case running
    /// The handler finished successfully.
    case completed
    /// Failed permanently or ran out of attempts; kept with its history for inspection and retry.
    case dead
    /// Cancelled by a handler or an operator.
    case cancelled

    /// Whether the job has finished (no worker will run it again unless an operator retries it).
    public var isFinal: Bool {
        switch self {
        case .available, .running: false
        case .completed, .dead, .cancelled: true
        }
    }
}
