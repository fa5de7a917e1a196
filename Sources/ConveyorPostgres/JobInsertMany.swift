import ConveyorCore
import Foundation
import Logging
import PostgresNIO

/// `JobInsertMany`: inserts a batch of jobs in one statement; duplicates (same id, or a unique key held
/// by an unfinished job) are dropped by `ON CONFLICT DO NOTHING`. With `dropDuplicates: false` the
/// statement has no `ON CONFLICT` clause, which makes every row about 30 % cheaper to insert (the speculative
/// insertion behind it pre-checks each unique index), and a duplicate fails the whole statement with
/// SQLSTATE 23505: for callers that retry with the clause then (`PostgresJobStore.ingest`). It also notifies
/// ``JobInsertMany/channel`` with the queues that received jobs (delivered when the transaction commits),
/// which wakes idle workers at once.
///
/// With a `start` request, the rows it names are inserted already claimed (`running`, attempt 1, leased
/// to its worker) — a direct start, which spares those jobs the claim statement — but only in queues
/// that are not paused and hold no due `available` job: a job waiting there comes first (DESIGN §3,
/// order). Rows refused are inserted `available` like the others; only `available` rows notify.
enum JobInsertMany {
    /// The `LISTEN`/`NOTIFY` channel; the payload is a comma-separated list of queue names.
    static let channel = "conveyor_jobs_inserted"

    static func query(
        _ jobs: [NewJob], maxAttempts: (String) -> Int, now: Date?, dropDuplicates: Bool = true, start: PostgresJobStore.StartRequest? = nil
    ) -> PostgresQuery {
        let startRows = Set(start?.rows ?? [])
        var starts: [Bool] = []
        var startQueues: Set<String> = []
        var ids: [UUID] = [], queues: [String] = [], kinds: [String] = [], args: [String] = []
        var priorities: [Int] = [], attempts: [Int] = [], runAts: [Date] = [], hasRunAt: [Bool] = []
        var uniqueKeys: [String] = [], limitKeys: [String] = [], callbackURLs: [String] = [], replyTos: [String] = [], tags: [String] = [], enqueuedAts: [Date] = [], hasEnqueuedAt: [Bool] = []
        for job in jobs {
            ids.append(job.id)
            queues.append(job.queue)
            kinds.append(job.kind)
            args.append(job.args)
            priorities.append(job.priority)
            attempts.append(job.maxAttempts ?? maxAttempts(job.kind))
            runAts.append(job.runAt ?? Date(timeIntervalSince1970: 0))
            hasRunAt.append(job.runAt != nil)
            uniqueKeys.append(job.uniqueKey ?? "")
            limitKeys.append(job.limitKey ?? "")
            callbackURLs.append(job.callbackURL ?? "")
            replyTos.append(job.replyTo ?? "")
            // Most jobs have no tags: skip the encoder for them (it showed in profiles of the ingest path).
            if job.tags.isEmpty {
                tags.append("[]")
            } else {
                tags.append(String(decoding: (try? JSONEncoder().encode(job.tags)) ?? Data("[]".utf8), as: UTF8.self))
            }
            enqueuedAts.append(job.enqueuedAt ?? Date(timeIntervalSince1970: 0))
            hasEnqueuedAt.append(job.enqueuedAt != nil)
            let starting = startRows.contains(starts.count)
            starts.append(starting)
            if starting { startQueues.insert(job.queue) }
        }
        let worker = start?.worker ?? ""
        let lease = start?.lease.seconds ?? 0
        return """
            WITH startable AS (
                SELECT coalesce(array_agg(q), '{}') AS queues
                FROM unnest(\(Array(startQueues))::text[]) AS q
                -- One probe per priority, in the claim index's order (queue, priority, run_at): each reads
                -- only due entries, however many jobs wait with a future run_at. `ORDER BY … LIMIT 1`
                -- keeps it on the index: as a bare EXISTS, on a table whose statistics predate a burst,
                -- the planner scanned the whole table (11 ms per insert over 115,000 dead rows).
                WHERE NOT EXISTS (
                        SELECT 1 FROM generate_series(0, 9) AS p(priority)
                        CROSS JOIN LATERAL (
                            SELECT 1 FROM conveyor_jobs a
                            WHERE a.state = \(unescaped: JobState.available.sql) AND a.queue = q AND a.priority = p.priority
                              AND a.run_at <= coalesce(\(now)::timestamptz, now())
                            ORDER BY a.run_at LIMIT 1) AS due)
                  AND NOT EXISTS (SELECT 1 FROM conveyor_queue_pauses p WHERE p.queue = q)
            ), inserted AS (
            INSERT INTO conveyor_jobs
                (id, queue, kind, args, priority, max_attempts, run_at, unique_key, limit_key, callback_url, reply_to, tags, inserted_at, enqueued_at,
                 state, attempt, attempted_at, locked_by, lease_expires_at)
            SELECT r.id, r.queue, r.kind, r.args::jsonb, r.priority, r.max_attempts,
                   CASE WHEN r.has_run_at THEN r.run_at ELSE coalesce(\(now)::timestamptz, now()) END,
                   NULLIF(r.unique_key, ''),
                   NULLIF(r.limit_key, ''),
                   NULLIF(r.callback_url, ''),
                   NULLIF(r.reply_to, ''),
                   ARRAY(SELECT jsonb_array_elements_text(r.tags::jsonb)),
                   coalesce(\(now)::timestamptz, now()),
                   CASE WHEN r.has_enqueued_at THEN r.enqueued_at END,
                   CASE WHEN s.go THEN \(unescaped: JobState.running.sql) ELSE \(unescaped: JobState.available.sql) END::conveyor_job_state,
                   CASE WHEN s.go THEN 1 ELSE 0 END,
                   CASE WHEN s.go THEN coalesce(\(now)::timestamptz, now()) END,
                   CASE WHEN s.go THEN \(worker) END,
                   CASE WHEN s.go THEN coalesce(\(now)::timestamptz, now()) + make_interval(secs => \(lease)) END
            FROM UNNEST(\(ids)::uuid[], \(queues)::text[], \(kinds)::text[], \(args)::text[],
                        \(priorities)::int8[], \(attempts)::int8[], \(runAts)::timestamptz[], \(hasRunAt)::bool[],
                        \(uniqueKeys)::text[], \(tags)::text[], \(enqueuedAts)::timestamptz[], \(hasEnqueuedAt)::bool[],
                        \(starts)::bool[], \(limitKeys)::text[], \(callbackURLs)::text[], \(replyTos)::text[])
                 WITH ORDINALITY
                 AS r(id, queue, kind, args, priority, max_attempts, run_at, has_run_at,
                      unique_key, tags, enqueued_at, has_enqueued_at, direct, limit_key, callback_url, reply_to, ord)
            CROSS JOIN startable
            CROSS JOIN LATERAL (
                SELECT r.direct AND r.queue = ANY(startable.queues)
                   AND (NOT r.has_run_at OR r.run_at <= coalesce(\(now)::timestamptz, now()))
            ) AS s(go)
            ORDER BY r.ord
            \(unescaped: dropDuplicates ? "ON CONFLICT DO NOTHING" : "")
            RETURNING id, queue, state, kind, args, attempt, max_attempts, priority, run_at, attempted_at
            )
            SELECT i.id, CASE WHEN i.state = \(unescaped: JobState.running.sql) THEN i.kind END,
                   CASE WHEN i.state = \(unescaped: JobState.running.sql) THEN i.args::text END,
                   i.queue, i.attempt, i.max_attempts, i.priority,
                   coalesce(greatest(0, extract(epoch FROM i.attempted_at - i.run_at))::float8, 0)
            FROM inserted i
            CROSS JOIN (
                SELECT count(*) FROM (
                    SELECT pg_notify(\(unescaped: "'\(channel)'"), string_agg(DISTINCT queue, ','))
                    FROM inserted WHERE state = \(unescaped: JobState.available.sql) HAVING count(*) > 0
                ) n
            ) notified
            """
    }

    /// The rows a `query` returns: every inserted id, in order, and the jobs it started.
    static func decode(_ rows: PostgresRowSequence) async throws -> (inserted: [UUID], started: [ClaimedJob]) {
        var inserted: [UUID] = []
        var started: [ClaimedJob] = []
        for try await (id, kind, args, queue, attempt, maxAttempts, priority, waited) in rows.decode(
            (UUID, String?, String?, String, Int32, Int32, Int16, Double).self)
        {
            inserted.append(id)
            if let kind, let args {
                started.append(
                    ClaimedJob(
                        id: id, kind: kind, queue: queue, args: args, attempt: Int(attempt), maxAttempts: Int(maxAttempts),
                        priority: Int(priority), waited: .seconds(waited)))
            }
        }
        return (inserted, started)
    }
}
