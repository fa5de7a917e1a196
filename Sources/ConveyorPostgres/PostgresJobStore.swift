public import ConveyorCore
public import Foundation
public import Logging
public import PostgresNIO

/// The jobs table: every statement about jobs goes through here.
///
/// Time comes from the injected ``ConveyorClock`` when one is given, otherwise from PostgreSQL's `now()`.
public struct PostgresJobStore: Sendable {
    /// The connection pool.
    public let client: PostgresClient
    let clock: StoreClock
    let logger: Logger

    /// Creates a store over `client` (whose `run()` the caller drives).
    ///
    /// - Parameter logger: PostgresNIO's per-query logger. Default: `conveyor.store` at `error`, because
    ///   every failure is also thrown to the caller, which reports it with job context.
    public init(client: PostgresClient, clock: (any ConveyorClock)? = nil, logger: Logger = PostgresJobStore.defaultLogger) {
        self.client = client
        self.clock = StoreClock(clock: clock)
        self.logger = logger
    }

    /// `conveyor.store` at level `error`.
    public static var defaultLogger: Logger {
        var logger = Logger(label: "conveyor.store")
        logger.logLevel = .error
        return logger
    }

    /// The result of inserting a batch.
    public struct InsertResult: Sendable, Equatable {
        /// The ids of the rows inserted.
        public var inserted: [UUID]
        /// How many were dropped as duplicates (same id, or a unique key held by an unfinished job).
        public var duplicates: Int
    }

    /// Inserts `jobs` in one statement, with the pool or on `connection` (e.g. inside the caller's transaction).
    ///
    /// - Parameter maxAttempts: the attempts of a job that does not set its own, by kind.
    public func insert(
        _ jobs: [NewJob], on connection: PostgresConnection? = nil,
        maxAttempts: (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts }
    ) async throws -> InsertResult {
        guard !jobs.isEmpty else { return InsertResult(inserted: [], duplicates: 0) }
        // PostgresNIO traps encoding a Date past about year 294,000: refuse what validation would.
        for job in jobs {
            for (field, date) in [("run_at", job.runAt), ("enqueued_at", job.enqueuedAt)] {
                if let date, !RFC3339.isSupported(date) {
                    throw ConveyorStoreError.invalidData(NewJob.ValidationError.timeOutOfRange(field: field).description)
                }
            }
        }
        let query = JobInsertMany.query(jobs, maxAttempts: maxAttempts, now: clock.bind)
        let runner: any QueryRunner = connection ?? client
        // Decoded inside `perform`: a statement's error can arrive while its rows are read.
        let inserted = try await perform { try await JobInsertMany.decode(runner.run(query, logger: logger)).inserted }
        return InsertResult(inserted: inserted, duplicates: jobs.count - inserted.count)
    }

    /// The store's "now": the injected clock's time, or this machine's (statements use PostgreSQL's then).
    public var now: Date { clock.bind ?? Date() }

    /// Claims up to `limit` due jobs of `queue` for `worker`, holding each for `lease`. Kinds in `limits`
    /// start only within their cluster-wide concurrency and per-key rate limits; jobs whose limit key is
    /// paused wait.
    public func claim(
        queue: String, limit: Int, worker: String, lease: Duration, limits: [String: KindLimit] = [:]
    ) async throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        guard !limits.isEmpty else {
            let query = JobClaimBatch.query(queue: queue, limit: limit, worker: worker, lease: lease, now: clock.bind)
            return try await perform { try await JobClaimBatch.decode(client.query(query, logger: logger)) }
        }
        let sorted = limits.sorted { $0.key < $1.key }.map { (kind: $0.key, limit: $0.value) }
        // No limited kind waits in this queue (the common case: a limit declared for a kind another
        // queue carries): the plain claim, leaving limited kinds to a later, locked one.
        let probe = JobClaimBatch.waitingQuery(queue: queue, kinds: sorted.map(\.kind), now: clock.bind)
        let waiting = try await perform { try await client.query(probe, logger: logger).collect().count }
        guard waiting > 0 else {
            let query = JobClaimBatch.query(
                queue: queue, limit: limit, worker: worker, lease: lease, excluding: sorted.map(\.kind), now: clock.bind)
            return try await perform { try await JobClaimBatch.decode(client.query(query, logger: logger)) }
        }
        // Kinds with cluster-wide limits: the locks, then the claim, in one transaction (see limitedQuery).
        let lock = JobClaimBatch.lockQuery(kinds: sorted.map(\.kind))
        let query = JobClaimBatch.limitedQuery(queue: queue, limit: limit, worker: worker, lease: lease, limits: sorted, now: clock.bind)
        return try await perform {
            try await client.withTransaction(logger: logger) { connection in
                _ = try await connection.query(lock, logger: logger).collect()
                return try await JobClaimBatch.decode(connection.query(query, logger: logger))
            }
        }
    }

    /// Marks jobs completed where they are still `running` at the given attempt; returns the ids written.
    @discardableResult
    public func complete(_ jobs: [(id: UUID, attempt: Int)]) async throws -> [UUID] {
        guard !jobs.isEmpty else { return [] }
        return try await ids(JobCompleteMany.query(jobs, now: clock.bind))
    }

    /// Writes non-completion resolutions, guarded by state and attempt; returns the ids written.
    @discardableResult
    public func resolve(_ results: [(id: UUID, attempt: Int, resolution: JobResolution)]) async throws -> [UUID] {
        guard !results.isEmpty else { return [] }
        return try await ids(JobResolveMany.query(results, now: clock.bind))
    }

    /// Writes the results of attempts in one statement, so a flush is atomic: each where the job is still
    /// `running` at that attempt; returns the ids written (the others were fenced off as stale).
    /// Completions alone take the cheaper completion statement.
    @discardableResult
    public func record(_ results: [(id: UUID, attempt: Int, resolution: JobResolution)]) async throws -> [UUID] {
        guard !results.isEmpty else { return [] }
        if results.allSatisfy({ $0.resolution == .complete }) {
            return try await ids(JobCompleteMany.query(results.map { (id: $0.id, attempt: $0.attempt) }, now: clock.bind))
        }
        return try await ids(JobResolveMany.query(results, now: clock.bind))
    }

    /// One job, or `nil` when no job has this id.
    public func job(id: UUID) async throws -> JobRecord? {
        try await perform { try await JobRecordRow.decode(client.query(JobGet.query(id: id), logger: logger)) }.first
    }

    /// Jobs matching `filter`, newest first.
    public func jobs(_ filter: JobFilter = JobFilter()) async throws -> [JobRecord] {
        try await perform { try await JobRecordRow.decode(client.query(JobList.query(filter), logger: logger)) }
    }

    /// Gives dead jobs (or, by id, cancelled ones) another attempt now; returns the ids retried.
    public func retry(_ target: JobTarget) async throws -> [UUID] {
        try await ids(JobRetry.query(target, now: clock.bind))
    }

    /// Makes a waiting job (scheduled, snoozed, backing off) due now and wakes the workers; false when it
    /// is not waiting. A kind that parks a job until a person decides (an approval) calls it.
    @discardableResult
    public func runNow(_ id: UUID) async throws -> Bool {
        let now = clock.bind
        let query: PostgresQuery = """
            WITH due AS (
                UPDATE conveyor_jobs SET run_at = coalesce(\(now)::timestamptz, now())
                WHERE id = \(id) AND state = 'available' RETURNING id, queue
            )
            SELECT d.id FROM due d
            WHERE (SELECT count(*) FROM (SELECT pg_notify(\(unescaped: "'\(JobInsertMany.channel)'"), d.queue) FROM due d) n) >= 0
            """
        return try await !ids(query).isEmpty
    }

    /// Cancels waiting or dead jobs with `reason`, recording `by` as who did; returns the ids cancelled.
    public func discard(_ target: JobTarget, reason: String, by: String? = nil) async throws -> [UUID] {
        try await ids(JobDiscard.query(target, reason: reason, by: by, now: clock.bind))
    }

    /// Deletes every job of `queue`, whatever its state; returns how many. For benchmarks and tests.
    public func deleteAll(queue: String) async throws -> Int {
        try await ids(JobDeleteQueue.query(queue: queue)).count
    }

    /// Folds the count changes that statements appended since the last fold into the kept counts
    /// (migration 0009), so reading them stays a few rows; returns how many changes it folded.
    /// Maintenance's leader calls it every second.
    @discardableResult
    public func foldQueueCounts() async throws -> Int {
        try await perform {
            var folded = 0
            for try await count in try await client.query("SELECT conveyor_fold_queue_counts()", logger: logger).decode(Int64.self) {
                folded = Int(count)
            }
            return folded
        }
    }

    /// Runs `VACUUM ANALYZE` on the jobs table (benchmarks start from a clean table with it).
    public func vacuum() async throws {
        try await perform { _ = try await client.query("VACUUM ANALYZE conveyor_jobs", logger: logger).collect() }
    }

    /// The statement behind ``queueStatistics()`` (to `EXPLAIN` it); `now` nil means PostgreSQL's clock.
    public static func queueStatisticsQuery(now: Date?) -> PostgresQuery { QueueStatistics.query(now: now) }

    /// Job counts per queue and state, and how long each queue's oldest due job has waited. Its cost
    /// does not grow with the number of finished jobs (migration 0009).
    public func queueStatistics() async throws -> [QueueStatistic] {
        try await perform {
            var result: [QueueStatistic] = []
            let rows = try await client.query(QueueStatistics.query(now: clock.bind), logger: logger)
            for try await (queue, state, count, age) in rows.decode((String, String, Int64, Double?).self) {
                guard let state = JobState(rawValue: state) else { continue }
                result.append(QueueStatistic(queue: queue, state: state, count: Int(count), oldestWaitSeconds: age))
            }
            return result
        }
    }

    func ids(_ query: PostgresQuery) async throws -> [UUID] {
        try await perform {
            var ids: [UUID] = []
            for try await id in try await client.query(query, logger: logger).decode(UUID.self) { ids.append(id) }
            return ids
        }
    }

    /// Runs `body`, turning PostgresNIO errors into ``ConveyorStoreError/database(_:)`` with a useful message.
    func perform<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.storeError(error)
        }
    }

    /// The error ``perform(_:)`` throws for `error`: PostgresNIO's errors (also a transaction's cause) as
    /// ``ConveyorStoreError``, anything else unchanged.
    static func storeError(_ error: any Error) -> any Error {
        if let error = error as? PSQLError {
            return ConveyorStoreError.wrap(error)
        }
        if let error = error as? PostgresTransactionError {
            let cause = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError
            return cause.map(ConveyorStoreError.wrap) ?? ConveyorStoreError.unavailable("transaction failed")
        }
        return error
    }
}

/// The number of jobs of one queue in one state.
public struct QueueStatistic: Sendable, Equatable, Codable {
    /// The queue.
    public var queue: String
    /// The state.
    public var state: JobState
    /// How many jobs.
    public var count: Int
    /// For `available`: seconds the oldest due job has waited, if any is due.
    public var oldestWaitSeconds: Double?

    /// Creates a statistic.
    public init(queue: String, state: JobState, count: Int, oldestWaitSeconds: Double?) {
        self.queue = queue
        self.state = state
        self.count = count
        self.oldestWaitSeconds = oldestWaitSeconds
    }
}
