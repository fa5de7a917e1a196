public import Logging
public import Foundation

/// Runs the jobs of one kind: a typed payload in, a ``JobOutcome`` out, failures thrown.
///
/// ```swift
/// struct SendReceipt: JobHandler {
///     struct Args: Codable, Sendable { var orderID: Int }
///     static let kind = "shop.send_receipt"
///     func run(_ args: Args, context: JobContext) async throws -> JobOutcome { ...; return .completed }
/// }
/// ```
/// Handlers must be idempotent: a job runs again after a failure or a lost worker.
public protocol JobHandler: Sendable {
    /// The payload decoded from the job's `args`.
    associatedtype Args: Decodable & Sendable
    /// The kind this handler serves, `[a-z0-9_.-]{1,100}`.
    static var kind: String { get }
    /// Timeout and retry policy for this kind. Default: ``JobKindOptions/init(timeout:retry:)``'s defaults.
    var options: JobKindOptions { get }
    /// Runs one attempt. Throw to fail (retried per policy); return an outcome otherwise.
    func run(_ args: Args, context: JobContext) async throws -> JobOutcome
}

extension JobHandler {
    public var options: JobKindOptions { JobKindOptions() }
}

/// Per-kind settings.
public struct JobKindOptions: Sendable {
    /// How long one attempt may run before it is cancelled and recorded as a timeout. Default 15 minutes.
    public var timeout: Duration
    /// Attempts and backoff. Default ``RetryPolicy/standard`` (25 attempts over about 20 days).
    public var retry: RetryPolicy
    /// At most this many jobs of the kind run at once across every worker of the cluster (a render
    /// farm's cap), enforced where jobs start; `nil` (the default) for no limit. A deployment can
    /// override it with `CONVEYOR_LIMITS` (see ``KindLimits``).
    public var concurrencyLimit: Int?
    /// At most this many starts per window for each limit key (``NewJob/limitKey``), across the cluster
    /// (30 per minute per ad account); `nil` (the default) for no limit. Overridable by `CONVEYOR_LIMITS`.
    public var rateLimit: RateLimit?

    /// Creates options.
    public init(
        timeout: Duration = .seconds(15 * 60), retry: RetryPolicy = .standard, concurrencyLimit: Int? = nil,
        rateLimit: RateLimit? = nil
    ) {
        self.timeout = timeout
        self.retry = retry
        self.concurrencyLimit = concurrencyLimit
        self.rateLimit = rateLimit
    }
}

/// What a handler knows about the attempt it runs.
public struct JobContext: Sendable {
    /// The job's id.
    public var id: UUID
    /// The job's kind.
    public var kind: String
    /// The queue it was claimed from.
    public var queue: String
    /// This attempt's number, 1-based.
    public var attempt: Int
    /// Attempts allowed before dead-letter.
    public var maxAttempts: Int
    /// A logger carrying the job's id, kind, attempt and queue as metadata.
    public var logger: Logger
    /// Where ``enqueue(_:)`` inserts follow-up jobs (the worker's database); nil outside a worker.
    public var enqueuer: (any JobEnqueuer)?
    private let reportProgress: (@Sendable (JobProgress) -> Void)?

    /// Creates a context; `progress` receives what the handler reports (the worker writes it).
    public init(
        id: UUID, kind: String, queue: String, attempt: Int, maxAttempts: Int, logger: Logger,
        progress: (@Sendable (JobProgress) -> Void)? = nil, enqueuer: (any JobEnqueuer)? = nil
    ) {
        self.enqueuer = enqueuer
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.logger = logger
        self.reportProgress = progress
    }

    /// Inserts follow-up jobs (validated, in one statement) and returns the ids inserted; a job whose
    /// id exists already is dropped, so derive ids from what the jobs are about and a repeated attempt
    /// adds nothing. Throws when the database refuses (the attempt fails and is retried).
    @discardableResult
    public func enqueue(_ jobs: [NewJob]) async throws -> [UUID] {
        guard let enqueuer else { throw NoEnqueuerError() }
        return try await enqueuer.enqueue(jobs)
    }

    /// Records how far the attempt got: `fraction` from 0 to 1 (clamped; NaN is ignored) and a short
    /// note (at most ``JobProgress/maxNoteBytes``). Call it as often as is convenient: the worker keeps
    /// the latest and writes it with the next lease renewal, at most about once a second per job, so
    /// it costs no statement of its own. It is kept on the job's row, shown by `conveyor jobs show`, the
    /// dashboard and `/api/jobs/ID`, and survives a restart; a retry shows it until it reports anew. A
    /// job that completes after reporting progress reads 1.
    public func progress(_ fraction: Double, _ note: String = "") {
        guard !fraction.isNaN else { return }
        reportProgress?(JobProgress(fraction: min(max(fraction, 0), 1), note: note))
    }
}

/// How far a job got, as its handler last reported (``JobContext/progress(_:_:)``).
public struct JobProgress: Sendable, Equatable {
    /// The most bytes of a note kept: 200.
    public static let maxNoteBytes = 200

    /// From 0 (nothing done) to 1 (all done).
    public var fraction: Double
    /// A short word on the current step ("encoding"), made storable and cut to ``maxNoteBytes``.
    public var note: String

    /// Creates a progress report.
    public init(fraction: Double, note: String = "") {
        self.fraction = fraction
        self.note = FailureRecord.storable(note, limit: Self.maxNoteBytes)
    }
}
