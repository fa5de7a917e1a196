public import ConveyorCore
public import Foundation
import PostgresNIO

extension PostgresJobStore {
    /// The `LISTEN` channel notified (on commit) when running jobs are asked to stop.
    public static let cancelChannel = JobCancel.channel

    /// What a heartbeat learned about the jobs it extended.
    public struct HeartbeatResult: Sendable, Equatable {
        /// Jobs still held at the attempt given; their leases now run until now + lease.
        public var extended: Set<UUID>
        /// Held jobs whose cancellation was requested, with the reason.
        public var cancelRequested: [UUID: String]
    }

    /// Extends the leases of `jobs` (each at the attempt the worker holds) in one statement, writing
    /// the progress their handlers reported since the last one (`progress`, by job).
    public func heartbeat(
        _ jobs: [(id: UUID, attempt: Int)], lease: Duration, progress: [UUID: JobProgress] = [:]
    ) async throws -> HeartbeatResult {
        var result = HeartbeatResult(extended: [], cancelRequested: [:])
        guard !jobs.isEmpty else { return result }
        try await perform {
            let rows = try await client.query(JobHeartbeat.query(jobs, lease: lease, progress: progress, now: clock.bind), logger: logger)
            for try await (id, cancel, reason) in rows.decode((UUID, Bool, String?).self) {
                result.extended.insert(id)
                if cancel { result.cancelRequested[id] = reason ?? "cancelled" }
            }
        }
        return result
    }

    /// What one rescue pass did.
    public struct RescueResult: Sendable, Equatable {
        /// Jobs back to `available`.
        public var retried: [UUID] = []
        /// Jobs that had spent their attempts, now `dead`.
        public var dead: [UUID] = []
        /// Jobs whose cancellation had been requested, now `cancelled`.
        public var cancelled: [UUID] = []
        /// All of them.
        public var count: Int { retried.count + dead.count + cancelled.count }
    }

    /// The default most times one job is rescued before it is dead-lettered: 3.
    public static let defaultMaxRescues = 3

    /// The default wait before a rescued job runs again: the default retry schedule without jitter.
    @Sendable public static func defaultRescueBackoff(_ attempt: Int) -> Duration {
        RetryPolicy.polynomialBackoff(attempt: attempt, random: 0)
    }

    /// Rescues up to `limit` running jobs whose lease expired (see DESIGN §4, leases).
    ///
    /// A rescue spends the attempt and records a `lease_expired` failure ("worker lost"); the job runs
    /// again after `backoff(attempt)` (default: ``RetryPolicy/polynomialBackoff(attempt:random:)``
    /// without jitter, 16 s after attempt 1, 31 s after 2, 96 s after 3…; attempts past 25 wait as long
    /// as the 25th), and is dead-lettered once it has been rescued `maxRescues` times or its attempts
    /// are spent. A handler that crashes its process (a trap, a stack overflow) therefore kills at most
    /// `maxRescues` workers, spread out in time, instead of every worker that claims it.
    public func rescueExpired(
        limit: Int = 1000, maxRescues: Int = PostgresJobStore.defaultMaxRescues,
        backoff: (Int) -> Duration = PostgresJobStore.defaultRescueBackoff
    ) async throws -> RescueResult {
        let delays = (1...25).map { backoff($0).seconds }
        return try await perform {
            var result = RescueResult()
            let rows = try await client.query(
                JobRescue.query(limit: limit, maxRescues: maxRescues, delays: delays, now: clock.bind), logger: logger)
            for try await (id, state) in rows.decode((UUID, String).self) {
                switch JobState(rawValue: state) {
                case .available?: result.retried.append(id)
                case .dead?: result.dead.append(id)
                default: result.cancelled.append(id)
                }
            }
            return result
        }
    }

    /// What a cancellation did.
    public struct CancelResult: Sendable, Equatable {
        /// Waiting jobs, now `cancelled`.
        public var cancelled: [UUID] = []
        /// Running jobs asked to stop; they end `cancelled` when their worker stops them (or when rescued).
        public var requested: [UUID] = []
    }

    /// Cancels waiting jobs and asks running ones to stop, recording `reason` and `by`.
    public func cancel(_ target: JobTarget, reason: String, by: String) async throws -> CancelResult {
        try await perform {
            var result = CancelResult()
            let rows = try await client.query(JobCancel.query(target, reason: reason, by: by, now: clock.bind), logger: logger)
            for try await (id, state) in rows.decode((UUID, String).self) {
                if state == JobState.running.rawValue { result.requested.append(id) } else { result.cancelled.append(id) }
            }
            return result
        }
    }

    /// Deletes up to `limit` completed/cancelled jobs finished before `finishedBefore` and dead ones
    /// finished before `deadBefore` (`nil`: keep them); returns how many were deleted.
    public func prune(finishedBefore: Date?, deadBefore: Date?, limit: Int = 1000) async throws -> Int {
        try await ids(JobPrune.query(finishedBefore: finishedBefore, deadBefore: deadBefore, limit: limit)).count
    }

    /// The current time as the store sees it: the injected clock's, or PostgreSQL's.
    public func now() async throws -> Date {
        if let date = clock.bind { return date }
        return try await perform {
            var now = Date()
            for try await date in try await client.query("SELECT now()", logger: logger).decode(Date.self) { now = date }
            return now
        }
    }

    /// A paused queue.
    public struct QueuePause: Sendable, Equatable, Codable {
        /// The queue.
        public var queue: String
        /// Since when.
        public var pausedAt: Date
        /// Who paused it.
        public var pausedBy: String
    }

    /// Pauses `queue`: workers stop claiming from it (running jobs finish); returns `false` if it already was.
    @discardableResult
    public func pause(queue: String, by: String) async throws -> Bool {
        try await perform {
            try await client.query(QueuePauseStatements.pause(queue: queue, by: by, now: clock.bind), logger: logger)
                .collect().count == 1
        }
    }

    /// Resumes `queue` and wakes idle workers; returns `false` if it was not paused.
    @discardableResult
    public func resume(queue: String) async throws -> Bool {
        try await perform {
            try await client.query(QueuePauseStatements.resume(queue: queue), logger: logger).collect().count == 1
        }
    }

    /// The paused queues.
    public func pausedQueues() async throws -> [QueuePause] {
        try await perform {
            var pauses: [QueuePause] = []
            let rows = try await client.query(QueuePauseStatements.list(), logger: logger)
            for try await (queue, at, by) in rows.decode((String, Date, String).self) {
                pauses.append(QueuePause(queue: queue, pausedAt: at, pausedBy: by))
            }
            return pauses
        }
    }

    /// Takes or renews the leadership `name` for `holder` until now + `ttl`; `true` when `holder` leads.
    public func acquireLeadership(_ name: String, holder: String, ttl: Duration) async throws -> Bool {
        try await perform {
            try await client.query(LeaderLease.acquire(name: name, holder: holder, ttl: ttl, now: clock.bind), logger: logger)
                .collect().count == 1
        }
    }

    /// Gives up the leadership `name` if `holder` has it, so another process can take over at once.
    public func resignLeadership(_ name: String, holder: String) async throws {
        try await perform {
            _ = try await client.query(LeaderLease.resign(name: name, holder: holder), logger: logger).collect()
        }
    }

    /// The current (unexpired) holder of the leadership `name`, if any.
    public func leader(_ name: String) async throws -> String? {
        try await perform {
            var holder: String?
            let rows = try await client.query(LeaderLease.current(name: name, now: clock.bind), logger: logger)
            for try await (name, _) in rows.decode((String, Date).self) { holder = name }
            return holder
        }
    }
}
