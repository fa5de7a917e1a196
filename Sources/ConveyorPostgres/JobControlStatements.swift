import ConveyorCore
import Foundation
import PostgresNIO

/// `JobHeartbeat`: extends the leases of the jobs a worker runs, each at the attempt it holds, in one
/// statement. Jobs missing from the result are no longer held (rescued, or claimed again); the result
/// also says which ones have a cancellation request. Progress reported since the last heartbeat is
/// written with it (a fraction of -1: none for that job).
enum JobHeartbeat {
    static func query(
        _ jobs: [(id: UUID, attempt: Int)], lease: Duration, progress: [UUID: JobProgress] = [:], now: Date?
    ) -> PostgresQuery {
        let ids = jobs.map(\.id)
        let attempts = jobs.map(\.attempt)
        let fractions = jobs.map { progress[$0.id]?.fraction ?? -1 }
        let notes = jobs.map { progress[$0.id]?.note ?? "" }
        return """
            UPDATE conveyor_jobs AS j
            SET lease_expires_at = coalesce(\(now)::timestamptz, now()) + make_interval(secs => \(lease.seconds)),
                progress = CASE WHEN r.fraction >= 0 THEN r.fraction::real ELSE j.progress END,
                progress_note = CASE WHEN r.fraction >= 0 THEN NULLIF(r.note, '') ELSE j.progress_note END,
                progress_at = CASE WHEN r.fraction >= 0 THEN coalesce(\(now)::timestamptz, now()) ELSE j.progress_at END
            FROM UNNEST(\(ids)::uuid[], \(attempts)::int8[], \(fractions)::float8[], \(notes)::text[])
                 AS r(id, attempt, fraction, note)
            WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = \(unescaped: JobState.running.sql)
            RETURNING j.id, j.cancel_requested_at IS NOT NULL, j.cancel_reason
            """
    }
}

/// `JobRescue`: returns running jobs whose lease expired (their worker died, froze or was cut off).
/// The attempt counts: a `lease_expired` failure is recorded ("worker lost"), and the job goes back to
/// `available` after `delays[attempt - 1]` seconds (the last one for later attempts), or to
/// `dead` when its attempts are spent or it has been rescued `maxRescues` times (its history counts
/// them), or to `cancelled` when a cancellation was requested. Notifies the queues that got jobs back.
enum JobRescue {
    static func query(limit: Int, maxRescues: Int, delays: [Double], now: Date?) -> PostgresQuery {
        let delays = delays.isEmpty ? [0] : delays
        return """
        WITH expired AS (
            SELECT id, 1 + (SELECT count(*) FROM jsonb_array_elements(errors) AS e
                            WHERE e->>'kind' = \(unescaped: "'\(FailureKind.leaseExpired.rawValue)'")) AS rescue
            FROM conveyor_jobs
            WHERE state = \(unescaped: JobState.running.sql)
              AND lease_expires_at < coalesce(\(now)::timestamptz, now())
            ORDER BY lease_expires_at
            LIMIT \(limit)
            FOR UPDATE SKIP LOCKED
        ), rescued AS (
            UPDATE conveyor_jobs AS j
            SET state = CASE
                    WHEN j.cancel_requested_at IS NOT NULL THEN \(unescaped: JobState.cancelled.sql)
                    WHEN j.attempt >= j.max_attempts OR expired.rescue >= \(maxRescues) THEN \(unescaped: JobState.dead.sql)
                    ELSE \(unescaped: JobState.available.sql) END,
                run_at = coalesce(\(now)::timestamptz, now()) + make_interval(secs =>
                    (\(delays)::float8[])[least(greatest(j.attempt, 1), \(delays.count))]),
                finished_at = CASE
                    WHEN j.cancel_requested_at IS NULL AND j.attempt < j.max_attempts AND expired.rescue < \(maxRescues) THEN NULL
                    ELSE coalesce(\(now)::timestamptz, now()) END,
                errors = j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt,
                    'at', extract(epoch FROM coalesce(\(now)::timestamptz, now())),
                    'message', 'lease expired: worker ' || coalesce(j.locked_by, '?')
                        || ' stopped renewing it (killed, frozen or cut off): worker lost, rescue '
                        || expired.rescue || ' of at most ' || \(maxRescues)::int8,
                    'kind', \(unescaped: "'\(FailureKind.leaseExpired.rawValue)'"))),
                locked_by = NULL,
                lease_expires_at = NULL
            FROM expired
            WHERE j.id = expired.id
            RETURNING j.id, j.queue, j.state
        )
        SELECT r.id, r.state::text FROM rescued r
        -- A one-time filter: notifies once, after the rescue, with the queues that got jobs back.
        WHERE (SELECT count(*) FROM (
            SELECT pg_notify(\(unescaped: "'\(JobInsertMany.channel)'"), string_agg(DISTINCT queue, ','))
            FROM rescued WHERE state = \(unescaped: JobState.available.sql) HAVING count(*) > 0) n) >= 0
        """
    }
}

/// `JobCancel`: cancels waiting jobs at once and asks running ones to stop (their workers are
/// notified on ``channel`` and also see the request at their next heartbeat). Records who and why.
enum JobCancel {
    /// The `LISTEN`/`NOTIFY` channel that tells workers to check their jobs for cancellation requests.
    static let channel = "conveyor_jobs_cancel"

    static func query(_ target: JobTarget, reason: String, by: String, now: Date?) -> PostgresQuery {
        var query: PostgresQuery = """
            WITH changed AS (
            UPDATE conveyor_jobs AS j
            SET state = CASE WHEN j.state = \(unescaped: JobState.available.sql)
                    THEN \(unescaped: JobState.cancelled.sql) ELSE j.state END,
                finished_at = CASE WHEN j.state = \(unescaped: JobState.available.sql)
                    THEN coalesce(\(now)::timestamptz, now()) ELSE j.finished_at END,
                cancel_requested_at = coalesce(\(now)::timestamptz, now()),
                cancel_reason = \(reason),
                cancelled_by = \(by)
            WHERE (j.state = \(unescaped: JobState.available.sql)
                   OR (j.state = \(unescaped: JobState.running.sql) AND j.cancel_requested_at IS NULL))
            """
        query.restrict(to: target)
        query.sql += """

            RETURNING j.id, j.state
            )
            SELECT c.id, c.state::text FROM changed c
            WHERE (SELECT count(*) FROM (
                SELECT pg_notify('\(channel)', '') FROM changed
                WHERE state = \(JobState.running.sql) HAVING count(*) > 0) n) >= 0
            """
        return query
    }
}

/// `JobPrune`: deletes up to `limit` finished jobs older than their retention, oldest first, skipping
/// rows locked by anyone else; run repeatedly in small batches so no lock is held for long.
enum JobPrune {
    static func query(finishedBefore: Date?, deadBefore: Date?, limit: Int) -> PostgresQuery {
        // A `nil` cutoff keeps those jobs forever: compare with -infinity.
        let never = Date.distantPast
        // Each group walks its partial `seq` index from the oldest job; a job finished long after it was
        // inserted (scheduled far ahead, retried for days) is passed over until its own time comes.
        return """
            WITH done AS (
                SELECT id FROM conveyor_jobs
                WHERE state IN (\(unescaped: JobState.completed.sql), \(unescaped: JobState.cancelled.sql))
                  AND finished_at < \(finishedBefore ?? never)
                ORDER BY seq
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), dead AS (
                SELECT id FROM conveyor_jobs
                WHERE state IN (\(unescaped: JobState.dead.sql)) AND finished_at < \(deadBefore ?? never)
                ORDER BY seq
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), doomed AS (
                SELECT id FROM done UNION ALL SELECT id FROM dead LIMIT \(limit)
            )
            DELETE FROM conveyor_jobs AS j WHERE j.id = ANY(ARRAY(SELECT id FROM doomed))
            RETURNING j.id
            """
    }
}

/// `QueuePause` / `QueueResume` / `QueuePaused`: the persisted pause flags. Resuming notifies the
/// insert channel with the queue, so idle workers claim at once.
enum QueuePauseStatements {
    static func pause(queue: String, by: String, now: Date?) -> PostgresQuery {
        """
        INSERT INTO conveyor_queue_pauses (queue, paused_at, paused_by)
        VALUES (\(queue), coalesce(\(now)::timestamptz, now()), \(by))
        ON CONFLICT (queue) DO NOTHING
        RETURNING queue
        """
    }

    static func resume(queue: String) -> PostgresQuery {
        """
        WITH resumed AS (DELETE FROM conveyor_queue_pauses WHERE queue = \(queue) RETURNING queue)
        SELECT r.queue FROM resumed r
        WHERE (SELECT count(*) FROM (
            SELECT pg_notify(\(unescaped: "'\(JobInsertMany.channel)'"), string_agg(queue, ','))
            FROM resumed HAVING count(*) > 0) n) >= 0
        """
    }

    static func list() -> PostgresQuery {
        "SELECT queue, paused_at, paused_by FROM conveyor_queue_pauses ORDER BY queue"
    }
}

/// `LeaderLease`: takes or renews the leadership row `name` for `holder` until now + `ttl`; succeeds
/// (returns a row) when the row is free, expired, or already held by `holder`.
enum LeaderLease {
    static func acquire(name: String, holder: String, ttl: Duration, now: Date?) -> PostgresQuery {
        """
        INSERT INTO conveyor_leaders AS l (name, holder, acquired_at, expires_at)
        VALUES (\(name), \(holder), coalesce(\(now)::timestamptz, now()),
                coalesce(\(now)::timestamptz, now()) + make_interval(secs => \(ttl.seconds)))
        ON CONFLICT (name) DO UPDATE
        SET holder = excluded.holder,
            acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE excluded.acquired_at END,
            expires_at = excluded.expires_at
        WHERE l.holder = excluded.holder OR l.expires_at < coalesce(\(now)::timestamptz, now())
        RETURNING holder
        """
    }

    static func resign(name: String, holder: String) -> PostgresQuery {
        "DELETE FROM conveyor_leaders WHERE name = \(name) AND holder = \(holder) RETURNING holder"
    }

    static func current(name: String, now: Date?) -> PostgresQuery {
        """
        SELECT holder, expires_at FROM conveyor_leaders
        WHERE name = \(name) AND expires_at >= coalesce(\(now)::timestamptz, now())
        """
    }
}
