public import Foundation
public import Logging

/// Runs the jobs of one kind many at a time (Oban Pro's chunk worker, River Pro's batches): up to
/// ``ChunkOptions/size`` jobs per call, gathered for at most ``ChunkOptions/linger``, one outcome per job.
///
/// ```swift
/// struct SendConversions: ChunkHandler {
///     struct Args: Codable, Sendable { var eventID: String }
///     static let kind = "meta.conversions"
///     var chunk: ChunkOptions { ChunkOptions(size: 1000) }
///     func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
///         let reply = try await meta.send(jobs.map(\.args))        // throw: every job of the chunk fails
///         return reply.outcomes(for: jobs)                          // a job left out: "no outcome", retried
///     }
/// }
/// ```
/// The chunk runs under the kind's timeout; shutdown stops it; each job keeps its own slot, lease and
/// attempt, and a job cancelled while the chunk runs ends `cancelled` whatever the handler returns.
public protocol ChunkHandler: Sendable {
    associatedtype Args: Decodable & Sendable
    /// The kind, `[a-z0-9_.-]{1,100}`.
    static var kind: String { get }
    /// Timeout (for the whole chunk) and retry policy (per job).
    var options: JobKindOptions { get }
    /// How many jobs per call, and how long a partial chunk waits to fill.
    var chunk: ChunkOptions { get }
    /// Runs one chunk. Throw to fail every job of it; return each job's result by id.
    func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult]
}

extension ChunkHandler {
    public var options: JobKindOptions { JobKindOptions() }
    public var chunk: ChunkOptions { ChunkOptions() }
}

/// A chunk kind's sizes.
public struct ChunkOptions: Sendable, Equatable {
    /// The most jobs per call. Default 50; a kind that coalesces bursts may take 1,000.
    public var size: Int
    /// How long a partial chunk waits for more jobs. Default 250 ms.
    public var linger: Duration

    public init(size: Int = 50, linger: Duration = .milliseconds(250)) {
        self.size = max(1, size)
        self.linger = max(.zero, linger)
    }
}

/// One job of a chunk.
public struct ChunkItem<Args: Sendable>: Sendable {
    public var id: UUID
    public var attempt: Int
    public var args: Args

    public init(id: UUID, attempt: Int, args: Args) {
        self.id = id
        self.attempt = attempt
        self.args = args
    }
}

/// What became of one job of a chunk.
public enum ChunkResult: Sendable, Equatable {
    /// It ended as a single job's handler would have returned (completed, with a result, snoozed, cancelled).
    case outcome(JobOutcome)
    /// It failed: retried per the kind's policy, `retryAfter` when given.
    case failed(String, retryAfter: Duration? = nil)
    /// It can never succeed: dead now.
    case permanent(String)
    /// An upstream throttled it: as ``JobFailure/throttled(key:until:_:)`` (the key, or the job's own
    /// limit key when nil, is paused until `until`; no attempt is spent).
    case throttled(key: String?, until: Date, String)

    /// Completed without a result.
    public static let completed = ChunkResult.outcome(.completed)
}

/// What a chunk's handler knows about the call.
public struct ChunkContext: Sendable {
    /// The kind and queue of the chunk.
    public var kind: String
    public var queue: String
    /// A logger carrying the kind, queue and the chunk's size.
    public var logger: Logger
    /// Where ``enqueue(_:)`` inserts follow-up jobs; nil outside a worker.
    public var enqueuer: (any JobEnqueuer)?

    public init(kind: String, queue: String, logger: Logger, enqueuer: (any JobEnqueuer)? = nil) {
        self.kind = kind
        self.queue = queue
        self.logger = logger
        self.enqueuer = enqueuer
    }

    /// Inserts follow-up jobs, as ``JobContext/enqueue(_:)``.
    @discardableResult
    public func enqueue(_ jobs: [NewJob]) async throws -> [UUID] {
        guard let enqueuer else { throw NoEnqueuerError() }
        return try await enqueuer.enqueue(jobs)
    }
}

extension ChunkResult {
    /// As the executor sees a single job's attempt.
    public var attemptResult: AttemptResult {
        switch self {
        case .outcome(let outcome): .outcome(outcome)
        case .failed(let message, let retryAfter): .failed(message: message, kind: retryAfter == nil ? .error : .retryAfter, retryAfter: retryAfter)
        case .permanent(let message): .failed(message: message, kind: .permanent)
        case .throttled(let key, let until, let message): .throttled(key: key, until: until, message: message)
        }
    }
}
