import ConveyorCore
import Foundation
import PostgresNIO

/// `JobClaimBatch`: takes up to `limit` due jobs of a queue in priority, `run_at`, insertion order,
/// skipping rows other workers hold, marks them `running`, counts the attempt and sets the lease.
/// A paused queue yields nothing.
///
/// The picked rows are updated through `id = ANY(ARRAY(…))`, a primary-key lookup whatever the table's
/// statistics say. Joined (`FROM picked`), the planner took the `LIMIT` as the row count and, on a table
/// not analyzed since it grew (a fresh deployment's first burst, until autovacuum's next round),
/// hash-joined it against a sequential scan of the whole table on every claim (measured: a 1-job claim
/// 4.5 ms on 130,000 rows instead of 1.7 ms; idle push-to-start p50 10–12 ms after a 20,000-job burst).
enum JobClaimBatch {
    static func query(queue: String, limit: Int, worker: String, lease: Duration, now: Date?) -> PostgresQuery {
        return """
            WITH picked AS (
                SELECT id FROM conveyor_jobs
                WHERE state = \(unescaped: JobState.available.sql)
                  AND queue = \(queue)
                  AND run_at <= coalesce(\(now)::timestamptz, now())
                  AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                ORDER BY priority, run_at, seq
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE conveyor_jobs AS j
            SET state = \(unescaped: JobState.running.sql),
                attempt = j.attempt + 1,
                attempted_at = coalesce(\(now)::timestamptz, now()),
                locked_by = \(worker),
                lease_expires_at = coalesce(\(now)::timestamptz, now()) + make_interval(secs => \(lease.seconds))
            WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
            RETURNING j.id, j.kind, j.queue, j.args::text, j.attempt, j.max_attempts, j.priority,
                      greatest(0, extract(epoch FROM j.attempted_at - j.run_at))::float8
            """
    }

    /// The claim when kinds have cluster-wide concurrency limits (`limits`, kind → most running): jobs of
    /// other kinds are picked as above; each limited kind's are picked up to its room (its limit less
    /// its running jobs, counted across every worker); the first `limit` of both, in claim order, start.
    ///
    /// It must run in a transaction after ``lockQuery(kinds:)``: the lock serializes the claims of a
    /// limited kind across the cluster, and in READ COMMITTED this statement's snapshot, taken after the
    /// lock was granted, sees every claim committed before (counting within one statement could not:
    /// two claims would count the same free room). Jobs whose lease expired still count as running
    /// until they are rescued, and finishing only lowers the count, so the limit is never exceeded.
    static func limitedQuery(
        queue: String, limit: Int, worker: String, lease: Duration, limits: [(kind: String, concurrency: Int)], now: Date?
    ) -> PostgresQuery {
        let kinds = limits.map(\.kind), caps = limits.map { Int64($0.concurrency) }
        return """
            WITH room AS (
                SELECT l.kind, greatest(0, l.cap - (SELECT count(*) FROM conveyor_jobs r
                    WHERE r.state = \(unescaped: JobState.running.sql) AND r.kind = l.kind)) AS room
                FROM unnest(\(kinds)::text[], \(caps)::int8[]) AS l(kind, cap)
            ), free AS (
                SELECT id, priority, run_at, seq FROM conveyor_jobs
                WHERE state = \(unescaped: JobState.available.sql)
                  AND queue = \(queue)
                  AND run_at <= coalesce(\(now)::timestamptz, now())
                  AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                  AND kind <> ALL(\(kinds)::text[])
                ORDER BY priority, run_at, seq
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), limited AS (
                SELECT p.* FROM room CROSS JOIN LATERAL (
                    SELECT id, priority, run_at, seq FROM conveyor_jobs
                    WHERE state = \(unescaped: JobState.available.sql)
                      AND queue = \(queue)
                      AND run_at <= coalesce(\(now)::timestamptz, now())
                      AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                      AND kind = room.kind
                    ORDER BY priority, run_at, seq
                    LIMIT least(room.room, \(limit))
                    FOR UPDATE SKIP LOCKED) p
            ), picked AS (
                SELECT id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) c
                ORDER BY priority, run_at, seq
                LIMIT \(limit)
            )
            UPDATE conveyor_jobs AS j
            SET state = \(unescaped: JobState.running.sql),
                attempt = j.attempt + 1,
                attempted_at = coalesce(\(now)::timestamptz, now()),
                locked_by = \(worker),
                lease_expires_at = coalesce(\(now)::timestamptz, now()) + make_interval(secs => \(lease.seconds))
            WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
            RETURNING j.id, j.kind, j.queue, j.args::text, j.attempt, j.max_attempts, j.priority,
                      greatest(0, extract(epoch FROM j.attempted_at - j.run_at))::float8
            """
    }

    /// Takes the transaction-scoped lock of each limited kind, in the order given (callers sort, so two
    /// claims never wait on each other's locks crosswise).
    static func lockQuery(kinds: [String]) -> PostgresQuery {
        "SELECT count(pg_advisory_xact_lock(hashtextextended('conveyor.kind_limit:' || k, 0)))::int8 FROM unnest(\(kinds)::text[]) AS k"
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [ClaimedJob] {
        var jobs: [ClaimedJob] = []
        for try await (id, kind, queue, args, attempt, maxAttempts, priority, waited) in rows.decode(
            (UUID, String, String, String, Int32, Int32, Int16, Double).self)
        {
            jobs.append(
                ClaimedJob(
                    id: id, kind: kind, queue: queue, args: args, attempt: Int(attempt),
                    maxAttempts: Int(maxAttempts), priority: Int(priority), waited: .seconds(waited)))
        }
        return jobs
    }
}
