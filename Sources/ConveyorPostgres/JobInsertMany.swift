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
enum JobInsertMany {
    /// The `LISTEN`/`NOTIFY` channel; the payload is a comma-separated list of queue names.
    static let channel = "conveyor_jobs_inserted"

    static func query(_ jobs: [NewJob], maxAttempts: (String) -> Int, now: Date?, dropDuplicates: Bool = true) -> PostgresQuery {
        var ids: [UUID] = [], queues: [String] = [], kinds: [String] = [], args: [String] = []
        var priorities: [Int] = [], attempts: [Int] = [], runAts: [Date] = [], hasRunAt: [Bool] = []
        var uniqueKeys: [String] = [], tags: [String] = [], enqueuedAts: [Date] = [], hasEnqueuedAt: [Bool] = []
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
            // Most jobs have no tags: skip the encoder for them (it showed in profiles of the ingest path).
            if job.tags.isEmpty {
                tags.append("[]")
            } else {
                tags.append(String(decoding: (try? JSONEncoder().encode(job.tags)) ?? Data("[]".utf8), as: UTF8.self))
            }
            enqueuedAts.append(job.enqueuedAt ?? Date(timeIntervalSince1970: 0))
            hasEnqueuedAt.append(job.enqueuedAt != nil)
        }
        return """
            WITH inserted AS (
            INSERT INTO conveyor_jobs
                (id, queue, kind, args, priority, max_attempts, run_at, unique_key, tags, inserted_at, enqueued_at)
            SELECT r.id, r.queue, r.kind, r.args::jsonb, r.priority, r.max_attempts,
                   CASE WHEN r.has_run_at THEN r.run_at ELSE coalesce(\(now)::timestamptz, now()) END,
                   NULLIF(r.unique_key, ''),
                   ARRAY(SELECT jsonb_array_elements_text(r.tags::jsonb)),
                   coalesce(\(now)::timestamptz, now()),
                   CASE WHEN r.has_enqueued_at THEN r.enqueued_at END
            FROM UNNEST(\(ids)::uuid[], \(queues)::text[], \(kinds)::text[], \(args)::text[],
                        \(priorities)::int8[], \(attempts)::int8[], \(runAts)::timestamptz[], \(hasRunAt)::bool[],
                        \(uniqueKeys)::text[], \(tags)::text[], \(enqueuedAts)::timestamptz[], \(hasEnqueuedAt)::bool[])
                 WITH ORDINALITY
                 AS r(id, queue, kind, args, priority, max_attempts, run_at, has_run_at,
                      unique_key, tags, enqueued_at, has_enqueued_at, ord)
            ORDER BY r.ord
            \(unescaped: dropDuplicates ? "ON CONFLICT DO NOTHING" : "")
            RETURNING id, queue
            )
            SELECT i.id FROM inserted i
            CROSS JOIN (
                SELECT pg_notify(\(unescaped: "'\(channel)'"), string_agg(DISTINCT queue, ','))
                FROM inserted HAVING count(*) > 0
            ) notified
            """
    }
}
