public import Foundation

/// A job as stored: what admin reads and the CLI show.
public struct JobRecord: Sendable, Equatable, Identifiable {
    /// The job's id (also its idempotency key).
    public var id: UUID
    /// Insertion order (the paging cursor of listings).
    public var seq: Int
    /// The current lifecycle state.
    public var state: JobState
    /// The queue that routes it to workers.
    public var queue: String
    /// The kind naming its handler.
    public var kind: String
    /// The handler's input, as JSON text.
    public var args: String
    /// Claim priority, 0 (first) to 9.
    public var priority: Int
    /// The number of attempts started so far.
    public var attempt: Int
    /// Attempts allowed before the job is dead-lettered.
    public var maxAttempts: Int
    /// Not claimed before this time.
    public var runAt: Date
    /// The deduplication key, if any.
    public var uniqueKey: String?
    /// Free labels.
    public var tags: [String]
    /// The failure history, oldest first.
    public var errors: [JobAttemptError]
    /// When the row was inserted.
    public var insertedAt: Date
    /// The producer's clock at enqueue time, if it sent one.
    public var enqueuedAt: Date?
    /// When the latest attempt started.
    public var attemptedAt: Date?
    /// When the job reached a final state.
    public var finishedAt: Date?
    /// The worker holding the job while it is `running`.
    public var lockedBy: String?
    /// Why the job was cancelled (or asked to stop), if it was.
    public var cancelReason: String?
    /// Who cancelled it (or asked it to stop), if someone did.
    public var cancelledBy: String?
    /// When a stop was asked for while it was running, if it was.
    public var cancelRequestedAt: Date?
    /// Until when the worker running it holds its lease.
    public var leaseExpiresAt: Date?
    /// The JSON its handler completed it with (``JobOutcome/completed(result:)``), if any.
    public var result: String?
    /// How far it got, as its handler last reported (``JobContext/progress(_:_:)``), if it did.
    public var progress: JobProgress?
    /// When that progress was written.
    public var progressAt: Date?
    /// The throttled key it counts against (``NewJob/limitKey``), if any.
    public var limitKey: String?
    /// Where its outcome is delivered when it ends (``NewJob/callbackURL``, ``NewJob/replyTo``), if anywhere.
    public var callbackURL: String?
    public var replyTo: String?

    /// Creates a record (used by the store when decoding rows).
    public init(
        id: UUID, seq: Int, state: JobState, queue: String, kind: String, args: String, priority: Int,
        attempt: Int, maxAttempts: Int, runAt: Date, uniqueKey: String?, tags: [String],
        errors: [JobAttemptError], insertedAt: Date, enqueuedAt: Date?, attemptedAt: Date?,
        finishedAt: Date?, lockedBy: String?, cancelReason: String?, cancelledBy: String? = nil,
        cancelRequestedAt: Date? = nil, leaseExpiresAt: Date? = nil, result: String? = nil,
        progress: JobProgress? = nil, progressAt: Date? = nil, limitKey: String? = nil,
        callbackURL: String? = nil, replyTo: String? = nil
    ) {
        self.limitKey = limitKey
        self.callbackURL = callbackURL
        self.replyTo = replyTo
        self.result = result
        self.progress = progress
        self.progressAt = progressAt
        self.cancelledBy = cancelledBy
        self.cancelRequestedAt = cancelRequestedAt
        self.leaseExpiresAt = leaseExpiresAt
        self.id = id
        self.seq = seq
        self.state = state
        self.queue = queue
        self.kind = kind
        self.args = args
        self.priority = priority
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.uniqueKey = uniqueKey
        self.tags = tags
        self.errors = errors
        self.insertedAt = insertedAt
        self.enqueuedAt = enqueuedAt
        self.attemptedAt = attemptedAt
        self.finishedAt = finishedAt
        self.lockedBy = lockedBy
        self.cancelReason = cancelReason
    }
}

/// A job as handed to a worker by a claim: only what running it needs.
public struct ClaimedJob: Sendable, Equatable, Identifiable {
    /// The job's id.
    public var id: UUID
    /// The kind naming its handler.
    public var kind: String
    /// The queue it was claimed from.
    public var queue: String
    /// The handler's input, as JSON text.
    public var args: String
    /// This attempt's number (1-based); results are fenced by it.
    public var attempt: Int
    /// Attempts allowed before the job is dead-lettered.
    public var maxAttempts: Int
    /// The claim priority.
    public var priority: Int
    /// How long the job was due before this attempt started: the start minus `run_at`, both by the
    /// database's clock (zero for a job started as soon as it was due).
    public var waited: Duration
    /// The throttled key it counts against (``NewJob/limitKey``), if any.
    public var limitKey: String?

    /// Creates a claimed job.
    public init(
        id: UUID, kind: String, queue: String, args: String, attempt: Int, maxAttempts: Int, priority: Int, waited: Duration = .zero,
        limitKey: String? = nil
    ) {
        self.waited = waited
        self.limitKey = limitKey
        self.id = id
        self.kind = kind
        self.queue = queue
        self.args = args
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.priority = priority
    }
}
