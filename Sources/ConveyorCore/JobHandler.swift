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

    /// Creates options.
    public init(timeout: Duration = .seconds(15 * 60), retry: RetryPolicy = .standard) {
        self.timeout = timeout
        self.retry = retry
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

    /// Creates a context.
    public init(id: UUID, kind: String, queue: String, attempt: Int, maxAttempts: Int, logger: Logger) {
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.logger = logger
    }
}
