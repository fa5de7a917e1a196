public import ConveyorCore
public import Foundation

/// One attempt's result, reported once it is written to PostgreSQL
/// (``Worker/Configuration/onResultsWritten``).
public struct WrittenResult: Sendable, Equatable {
    /// The job.
    public var id: UUID
    /// Its kind.
    public var kind: String
    /// Its queue.
    public var queue: String
    /// The attempt that ended.
    public var attempt: Int
    /// What the worker wrote: the job's next state and, for failures, the recorded error. (A job whose
    /// cancellation was requested while it ran ends `cancelled` instead of going back to `available`:
    /// its store record says so; this is the worker's side.)
    public var resolution: JobResolution

    /// Creates a result.
    public init(id: UUID, kind: String, queue: String, attempt: Int, resolution: JobResolution) {
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.resolution = resolution
    }
}
