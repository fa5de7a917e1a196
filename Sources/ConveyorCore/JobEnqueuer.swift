public import Foundation

/// Where a handler's follow-up jobs go (``JobContext/enqueue(_:)``): the worker's database.
///
/// A follow-up is inserted before the job that made it completes, so a handler that runs again after
/// a crash would insert it twice: give follow-ups ids derived from what they are about
/// (``StableID/make(_:)``), and the second insert is dropped.
public protocol JobEnqueuer: Sendable {
    /// Validates and inserts `jobs` in one statement; a job whose id (or unfinished unique key) exists
    /// is dropped. Returns the ids inserted.
    func enqueue(_ jobs: [NewJob]) async throws -> [UUID]
}

/// A context without an enqueuer was asked to enqueue (a handler run outside a worker).
public struct NoEnqueuerError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "this context has no enqueuer: follow-up jobs can only be enqueued inside a worker" }
}
