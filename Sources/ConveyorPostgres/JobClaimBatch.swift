import ConveyorCore
import Foundation
import PostgresNIO

/// `JobClaimBatch`: takes up to `limit` due jobs of a queue in priority, `run_at`, insertion order,
/// skipping rows other workers hold, marks them `running`, counts the attempt and sets the lease.
/// A paused queue yields nothing, and a job whose limit key is paused is left waiting.
///
/// The picked rows are updated through `id = ANY(ARRAY(…))`, a primary-key lookup whatever the table's
/// statistics say. Joined (`FROM picked`), the planner took the `LIMIT` as the row count and, on a table
/// not analyzed since it grew (a fresh deployment's first burst, until autovacuum's next round),
/// hash-joined it against a sequential scan of the whole table on every claim (measured: a 1-job claim
/// 4.5 ms on 130,000 rows instead of 1.7 ms; idle push-to-start p50 10–12 ms after a 20,000-job burst).
enum JobClaimBatch {
    /// The claim described above. Kinds in `excluding` are left waiting: those with cluster-wide limits,
    /// which only the locked ``limitedQuery(queue:limit:worker:lease:limits:now:)`` may start.
    static func query(queue: String, limit: Int, worker: String, lease: Duration, excluding: [String] = [], now: Date?) -> PostgresQuery {
        return """
            WITH picked AS (
                SELECT id FROM conveyor_jobs
                WHERE state = \(unescaped: JobState.available.sql)
                  AND queue = \(queue)
                  AND run_at <= coalesce(\(now)::timestamptz, now())
                  AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                  AND (limit_key IS NULL OR NOT EXISTS (
                      SELECT 1 FROM conveyor_key_pauses k WHERE k.key = limit_key AND k.until > coalesce(\(now)::timestamptz, now())))
                AND kind <> ALL(\(excluding)::text[])
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
                      greatest(0, extract(epoch FROM j.attempted_at - j.run_at))::float8, j.limit_key
            """
    }

    /// The claim when kinds have cluster-wide limits (``KindLimit``): jobs of other kinds are picked as
    /// above; each limited kind's are picked up to its room (its concurrency limit less its running
    /// jobs, counted across every worker and queue) and, with a rate limit, to what each limit key has
    /// left in the current window (`conveyor_key_starts`, which the statement then counts up); the first
    /// `limit` of both, in claim order, start.
    ///
    /// It must run in a transaction after ``lockQuery(kinds:)``: the lock serializes the claims of a
    /// limited kind across the cluster, and in READ COMMITTED this statement's snapshot, taken after the
    /// lock was granted, sees every claim committed before (counting within one statement could not:
    /// two claims would count the same free room). Jobs whose lease expired still count as running
    /// until they are rescued, and finishing only lowers the count, so the limit is never exceeded.
    ///
    /// Its clock is `statement_timestamp()`, not the transaction's `now()`: the transaction may have
    /// waited for the lock, and a start stamped before the finish it waited for would look like one
    /// job too many in `attempted_at` (and be counted in a window already closed).
    ///
    /// A rate-limited kind's candidates are read `limit × 4` at a time (at most 1,000), keys already
    /// spent for the window skipped, so a burst on one key does not hide the other keys' jobs behind
    /// it. When every key is spent the claim reads past all of the kind's due jobs, once per poll: keep a
    /// heavily rate-limited kind in a queue of its own.
    static func limitedQuery(
        queue: String, limit: Int, worker: String, lease: Duration, limits: [(kind: String, limit: KindLimit)], now: Date?
    ) -> PostgresQuery {
        let kinds = limits.map(\.kind)
        let caps = limits.map { Int64($0.limit.concurrency ?? 0) }
        let rates = limits.map { Int64($0.limit.rate?.starts ?? 0) }
        let windows = limits.map { $0.limit.rate?.window.seconds ?? 0 }
        return """
            WITH lim AS (
                SELECT l.kind, l.cap, l.rate, l.per,
                       CASE WHEN l.per > 0 THEN to_timestamp(floor(extract(epoch FROM coalesce(\(now)::timestamptz, statement_timestamp())) / l.per) * l.per) END
                           AS window_start
                FROM unnest(\(kinds)::text[], \(caps)::int8[], \(rates)::int8[], \(windows)::float8[]) AS l(kind, cap, rate, per)
            ), room AS (
                SELECT lim.*, CASE WHEN lim.cap > 0
                    THEN least(\(limit), greatest(0, lim.cap - (SELECT count(*) FROM conveyor_jobs r
                        WHERE r.state = \(unescaped: JobState.running.sql) AND r.kind = lim.kind)))
                    ELSE \(limit) END AS room
                FROM lim
            ), free AS (
                SELECT id, priority, run_at, seq FROM conveyor_jobs
                WHERE state = \(unescaped: JobState.available.sql)
                  AND queue = \(queue)
                  AND run_at <= coalesce(\(now)::timestamptz, statement_timestamp())
                  AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                  AND (limit_key IS NULL OR NOT EXISTS (
                      SELECT 1 FROM conveyor_key_pauses k WHERE k.key = limit_key AND k.until > coalesce(\(now)::timestamptz, statement_timestamp())))
                  AND kind <> ALL(\(kinds)::text[])
                ORDER BY priority, run_at, seq
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), candidates AS (
                SELECT room.kind, room.rate, room.window_start, room.room, c.* FROM room CROSS JOIN LATERAL (
                    SELECT id, priority, run_at, seq, limit_key FROM conveyor_jobs
                    WHERE state = \(unescaped: JobState.available.sql)
                      AND queue = \(queue)
                      AND run_at <= coalesce(\(now)::timestamptz, statement_timestamp())
                      AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = \(queue))
                      AND (limit_key IS NULL OR NOT EXISTS (
                          SELECT 1 FROM conveyor_key_pauses k WHERE k.key = limit_key AND k.until > coalesce(\(now)::timestamptz, statement_timestamp())))
                      AND kind = room.kind
                      AND (room.rate = 0 OR limit_key IS NULL OR NOT EXISTS (
                          SELECT 1 FROM conveyor_key_starts s
                          WHERE s.kind = room.kind AND s.key = limit_key AND s.window_start = room.window_start AND s.starts >= room.rate))
                    ORDER BY priority, run_at, seq
                    LIMIT CASE WHEN room.rate > 0 THEN least(room.room * 4, 1000) ELSE room.room END) c
            ), ranked AS (
                SELECT c.*, row_number() OVER (PARTITION BY c.kind, c.limit_key ORDER BY c.priority, c.run_at, c.seq) AS n
                FROM candidates c
            ), allowed AS (
                SELECT r.id, r.priority, r.run_at, r.seq, r.room,
                       row_number() OVER (PARTITION BY r.kind ORDER BY r.priority, r.run_at, r.seq) AS m
                FROM ranked r
                LEFT JOIN conveyor_key_starts s
                    ON r.rate > 0 AND s.kind = r.kind AND s.key = r.limit_key AND s.window_start = r.window_start
                WHERE r.rate = 0 OR r.limit_key IS NULL OR r.n + coalesce(s.starts, 0) <= r.rate
            ), picked AS (
                SELECT id FROM (
                    SELECT id, priority, run_at, seq FROM free
                    UNION ALL
                    SELECT id, priority, run_at, seq FROM allowed WHERE m <= room) c
                ORDER BY priority, run_at, seq
                LIMIT \(limit)
            ), started AS (
                UPDATE conveyor_jobs AS j
                SET state = \(unescaped: JobState.running.sql),
                    attempt = j.attempt + 1,
                    attempted_at = coalesce(\(now)::timestamptz, statement_timestamp()),
                    locked_by = \(worker),
                    lease_expires_at = coalesce(\(now)::timestamptz, statement_timestamp()) + make_interval(secs => \(lease.seconds))
                WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
                  -- Limited kinds' candidates are read without row locks (the kind's lock serializes their
                  -- claims; locking every candidate wrote thousands of row locks per claim): a job that
                  -- changed meanwhile (cancelled, claimed by a worker without the limit) is skipped here.
                  AND j.state = \(unescaped: JobState.available.sql)
                RETURNING j.id, j.kind, j.queue, j.args::text AS args, j.attempt, j.max_attempts, j.priority,
                          greatest(0, extract(epoch FROM j.attempted_at - j.run_at))::float8 AS waited, j.limit_key
            ), counted AS (
                INSERT INTO conveyor_key_starts (kind, key, window_start, window_end, starts)
                SELECT s.kind, s.limit_key, lim.window_start, lim.window_start + make_interval(secs => lim.per), count(*)
                FROM started s JOIN lim ON lim.kind = s.kind AND lim.rate > 0
                WHERE s.limit_key IS NOT NULL
                GROUP BY s.kind, s.limit_key, lim.window_start, lim.per
                ON CONFLICT (kind, key, window_start) DO UPDATE SET starts = conveyor_key_starts.starts + excluded.starts
            )
            SELECT id, kind, queue, args, attempt, max_attempts, priority, waited, limit_key FROM started
            """
    }

    /// The limited kinds among `kinds` with a due job waiting in `queue`: one probe per kind and
    /// priority on `conveyor_jobs_kind_claim_idx` (migration 0016), each reading only due entries, so
    /// it costs the same behind a million waiting jobs of other kinds or a thousand scheduled ones of
    /// its own. A queue where none waits is claimed by ``query(queue:limit:worker:lease:excluding:now:)``,
    /// without the locks; a limited job inserted after the probe waits for the next claim.
    static func waitingQuery(queue: String, kinds: [String], now: Date?) -> PostgresQuery {
        """
        SELECT k FROM unnest(\(kinds)::text[]) AS k
        WHERE EXISTS (
            SELECT 1 FROM generate_series(0, 9) AS p(priority)
            CROSS JOIN LATERAL (
                SELECT 1 FROM conveyor_jobs a
                WHERE a.state = \(unescaped: JobState.available.sql) AND a.queue = \(queue) AND a.kind = k
                  AND a.priority = p.priority AND a.run_at <= coalesce(\(now)::timestamptz, now())
                ORDER BY a.run_at LIMIT 1) AS due)
        """
    }

    /// Takes the transaction-scoped lock of each limited kind, in the order given (callers sort, so two
    /// claims never wait on each other's locks crosswise).
    static func lockQuery(kinds: [String]) -> PostgresQuery {
        "SELECT count(pg_advisory_xact_lock(hashtextextended('conveyor.kind_limit:' || k, 0)))::int8 FROM unnest(\(kinds)::text[]) AS k"
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [ClaimedJob] {
        var jobs: [ClaimedJob] = []
        for try await (id, kind, queue, args, attempt, maxAttempts, priority, waited, limitKey) in rows.decode(
            (UUID, String, String, String, Int32, Int32, Int16, Double, String?).self)
        {
            jobs.append(
                ClaimedJob(
                    id: id, kind: kind, queue: queue, args: args, attempt: Int(attempt),
                    maxAttempts: Int(maxAttempts), priority: Int(priority), waited: .seconds(waited), limitKey: limitKey))
        }
        return jobs
    }
}
