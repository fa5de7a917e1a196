public import ConveyorCore
public import ConveyorIngress
public import ConveyorPostgres
public import ConveyorRedis
public import Foundation

public import PostgresNIO

/// The Swift API for enqueueing jobs.
///
/// ```swift
/// let conveyor = ConveyorClient(redis: try RedisConfiguration(url: "redis://127.0.0.1:6379/0"))
/// try await conveyor.enqueue(NewJob(kind: "ml.retrain", args: #"{"model":"ctr"}"#))   // LPUSH an envelope
///
/// // Or atomically with your own writes, straight into PostgreSQL:
/// try await postgres.withTransaction(logger: logger) { connection in
///     try await connection.query("UPDATE orders …", logger: logger)
///     try await conveyor.insert([job], on: connection)
/// }
/// ```
/// `enqueue` validates the job and pushes a version 1 envelope onto `{conveyor}:ingress`; workers move
/// it into PostgreSQL exactly once. `insert` writes PostgreSQL directly (same validation), for jobs that
/// must commit or roll back with the caller's transaction.
public struct ConveyorClient: Sendable {
    let redis: RedisConnection?
    let keys: IngressKeys
    let store: PostgresJobStore?
    let maxAttempts: @Sendable (String) -> Int

    /// The client is missing the connection an operation needs.
    public struct NotConfigured: Error, CustomStringConvertible {
        public var description: String
    }

    /// Creates a client. Pass `redis` to ``enqueue(_:)``, `postgres` to ``insert(_:on:)``, or both.
    ///
    /// - Parameter maxAttempts: for ``insert(_:on:)``, the attempts of a job that sets none, by kind.
    ///   Default ``RetryPolicy/defaultMaxAttempts`` (workers apply their kinds' defaults to envelopes).
    public init(
        redis: RedisConfiguration? = nil, keys: IngressKeys = IngressKeys(), postgres: PostgresClient? = nil,
        clock: (any ConveyorClock)? = nil,
        maxAttempts: @escaping @Sendable (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts }
    ) {
        self.redis = redis.map { RedisConnection(configuration: $0, name: "conveyor-producer") }
        self.keys = keys
        self.store = postgres.map { PostgresJobStore(client: $0, clock: clock) }
        self.maxAttempts = maxAttempts
    }

    /// Validates `job` and pushes its envelope onto the ingress list.
    public func enqueue(_ job: NewJob) async throws {
        try await enqueue([job])
    }

    /// Validates every job (throwing ``NewJob/ValidationError`` before pushing anything) and pushes
    /// their envelopes in one pipelined round trip.
    public func enqueue(_ jobs: [NewJob]) async throws {
        guard let redis else { throw NotConfigured(description: "ConveyorClient.enqueue needs a Redis configuration") }
        for job in jobs { try job.validate() }
        var commands: [[Data]] = []
        for chunk in stride(from: 0, to: jobs.count, by: 1000) {
            var command = [Data("LPUSH".utf8), Data(keys.ingress.utf8)]
            for job in jobs[chunk..<min(chunk + 1000, jobs.count)] { command.append(try Envelope.encode(job)) }
            commands.append(command)
        }
        for reply in try await redis.pipeline(commands) {
            if case .error(let message) = reply { throw RedisError.commandFailed(message) }
        }
    }

    /// Pushes raw envelopes (already encoded JSON) as they are; workers validate and quarantine them.
    public func push(envelopes: [Data]) async throws {
        guard let redis else { throw NotConfigured(description: "ConveyorClient.push needs a Redis configuration") }
        let commands = stride(from: 0, to: envelopes.count, by: 1000).map { chunk in
            [Data("LPUSH".utf8), Data(keys.ingress.utf8)] + envelopes[chunk..<min(chunk + 1000, envelopes.count)]
        }
        for reply in try await redis.pipeline(commands) {
            if case .error(let message) = reply { throw RedisError.commandFailed(message) }
        }
    }

    /// Validates and inserts one job into PostgreSQL; returns `false` when it was dropped as a duplicate.
    @discardableResult
    public func insert(_ job: NewJob, on connection: PostgresConnection? = nil) async throws -> Bool {
        try await insert([job], on: connection).inserted.count == 1
    }

    /// Validates and inserts jobs in one statement, with the pool or on `connection` (inside its transaction).
    ///
    /// Throws ``NewJob/ValidationError`` for the first invalid job, before inserting anything.
    @discardableResult
    public func insert(_ jobs: [NewJob], on connection: PostgresConnection? = nil) async throws -> PostgresJobStore.InsertResult {
        guard let store else { throw NotConfigured(description: "ConveyorClient.insert needs a PostgreSQL client") }
        for job in jobs { try job.validate() }
        return try await store.insert(jobs, on: connection, maxAttempts: maxAttempts)
    }
}
