public import ConveyorCore
import Foundation
public import Logging
public import PostgresNIO

/// The Swift API for enqueueing jobs.
///
/// ```swift
/// let conveyor = ConveyorClient(postgres: client)
/// try await conveyor.enqueue(NewJob(kind: "ml.retrain", args: #"{"model":"ctr"}"#))
/// // or atomically with your own writes:
/// try await client.withTransaction(logger: logger) { connection in
///     try await connection.query("UPDATE orders …", logger: logger)
///     try await conveyor.enqueue([job], on: connection)
/// }
/// ```
public struct ConveyorClient: Sendable {
    let store: PostgresJobStore
    let maxAttempts: @Sendable (String) -> Int

    /// Creates a client over a running `PostgresClient`.
    ///
    /// - Parameter maxAttempts: the attempts of a job that does not set its own, by kind
    ///   (a worker passes its registry's policies). Default ``RetryPolicy/defaultMaxAttempts``.
    public init(
        postgres: PostgresClient, clock: (any ConveyorClock)? = nil,
        maxAttempts: @escaping @Sendable (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts },
        logger: Logger = PostgresJobStore.defaultLogger
    ) {
        self.store = PostgresJobStore(client: postgres, clock: clock, logger: logger)
        self.maxAttempts = maxAttempts
    }

    /// Validates and inserts one job; returns `false` when it was dropped as a duplicate.
    @discardableResult
    public func enqueue(_ job: NewJob, on connection: PostgresConnection? = nil) async throws -> Bool {
        try await enqueue([job], on: connection).inserted.count == 1
    }

    /// Validates and inserts jobs in one statement, with the pool or on `connection` (inside its transaction).
    ///
    /// Throws ``NewJob/ValidationError`` for the first invalid job, before inserting anything.
    @discardableResult
    public func enqueue(_ jobs: [NewJob], on connection: PostgresConnection? = nil) async throws -> PostgresJobStore.InsertResult {
        for job in jobs { try job.validate() }
        return try await store.insert(jobs, on: connection, maxAttempts: maxAttempts)
    }
}
