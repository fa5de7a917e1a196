import ConveyorCore
import Foundation
import PostgresNIO

/// `JobList`: jobs matching optional filters, newest first, paged by insertion order (`seq`).
///
/// Finished jobs (the bulk of the table) are read in `seq` order from their partial indexes; active
/// ones are sorted (cheap unless the backlog is huge). Without a state filter the state groups are read
/// apart and merged, so
/// no index on `seq` over every row is needed (it cost every job version an index write, see
/// `migrations/0007_finished_seq_indexes.sql`).
enum JobList {
    /// States read together, each group from its own partial index (a group of two would scan the table).
    static let groups: [[JobState]] = [[.available], [.running], [.completed, .cancelled], [.dead]]

    static func query(_ filter: JobFilter) -> PostgresQuery {
        var binds = PostgresBindings()
        var conditions: [String] = []
        if let kind = filter.kind {
            binds.append(kind)
            conditions.append("kind = $\(binds.count)")
        }
        if let queue = filter.queue {
            binds.append(queue)
            conditions.append("queue = $\(binds.count)")
        }
        if let before = filter.beforeSeq {
            binds.append(before)
            conditions.append("seq < $\(binds.count)")
        }
        binds.append(filter.limit)
        let limit = "$\(binds.count)"
        let branches = (filter.state.map { [[$0]] } ?? groups).map { states in
            let state = "state IN (\(states.map(\.sql).joined(separator: ", ")))"
            let conditions = ([state] + conditions).joined(separator: " AND ")
            return "(SELECT \(JobRecordRow.columns) FROM conveyor_jobs WHERE \(conditions) ORDER BY seq DESC LIMIT \(limit))"
        }
        var query: PostgresQuery = ""
        query.sql = branches.joined(separator: "\nUNION ALL\n") + (branches.count > 1 ? "\nORDER BY seq DESC LIMIT \(limit)" : "")
        query.binds = binds
        return query
    }
}

/// `JobGet`: one job by id.
enum JobGet {
    static func query(id: UUID) -> PostgresQuery {
        "SELECT \(unescaped: JobRecordRow.columns) FROM conveyor_jobs WHERE id = \(id)"
    }
}

/// `JobRetry`: gives dead (or, by id, cancelled) jobs another attempt now.
///
/// `max_attempts` grows when the job has spent them all, so the retry really runs. A job whose unique
/// key is held by an unfinished job stays where it is; of several selected jobs sharing a unique key,
/// only the newest is retried (two would violate the key, and fail the whole retry).
enum JobRetry {
    static func query(_ target: JobTarget, now: Date?) -> PostgresQuery {
        var query: PostgresQuery = """
            WITH chosen AS (
                SELECT DISTINCT ON (coalesce(j.unique_key, j.id::text)) j.id
                FROM conveyor_jobs AS j
                WHERE (j.unique_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM conveyor_jobs o
                        WHERE o.unique_key = j.unique_key AND o.id <> j.id
                          AND o.state IN (\(unescaped: JobState.available.sql), \(unescaped: JobState.running.sql))))
            """
        switch target {
        case .ids(let ids):
            query.append(" AND j.state IN (\(JobState.dead.sql), \(JobState.cancelled.sql)) AND j.id = ANY($\(query.binds.count + 1)::uuid[])", ids)
        case .kind(let kind):
            query.append(" AND j.state = \(JobState.dead.sql) AND j.kind = $\(query.binds.count + 1)", kind)
        case .queue(let queue):
            query.append(" AND j.state = \(JobState.dead.sql) AND j.queue = $\(query.binds.count + 1)", queue)
        case .all:
            query.sql += " AND j.state = \(JobState.dead.sql)"
        }
        query.sql += """

                ORDER BY coalesce(j.unique_key, j.id::text), j.seq DESC
            )
            UPDATE conveyor_jobs AS j
            SET state = \(JobState.available.sql),
                run_at = coalesce($\(query.binds.count + 1)::timestamptz, now()),
                max_attempts = greatest(j.max_attempts, j.attempt + 1),
                finished_at = NULL,
                cancel_reason = NULL,
                cancel_requested_at = NULL,
                cancelled_by = NULL
            WHERE j.id = ANY(ARRAY(SELECT id FROM chosen)) AND j.state IN (\(JobState.dead.sql), \(JobState.cancelled.sql))
            RETURNING j.id
            """
        query.binds.append(now)
        return query
    }
}

/// `JobDiscard`: cancels waiting or dead jobs, recording the reason.
enum JobDiscard {
    static func query(_ target: JobTarget, reason: String, by: String?, now: Date?) -> PostgresQuery {
        var query: PostgresQuery = """
            UPDATE conveyor_jobs AS j
            SET state = \(unescaped: JobState.cancelled.sql),
                finished_at = coalesce(\(now)::timestamptz, now()),
                cancel_reason = \(reason),
                cancelled_by = \(by)
            WHERE j.state IN (\(unescaped: JobState.available.sql), \(unescaped: JobState.dead.sql))
            """
        query.restrict(to: target)
        query.sql += " RETURNING j.id"
        return query
    }
}

/// `QueueStatistics`: job counts per queue and state, and how long the oldest due job has waited.
///
/// Costs the same at 5 million finished jobs as at 5 thousand: the counts are the per-statement sums
/// kept by migration 0009's triggers (folded counts plus the changes since the last fold, a few rows
/// per queue and state), and the oldest due job of a
/// queue is one claim-index probe per priority (0…9). Proven by `QueueStatisticsTests` (the plan reads
/// no heap row of the jobs table) and measured in docs/performance.md.
enum QueueStatistics {
    static func query(now: Date?) -> PostgresQuery {
        let priorities = "generate_series(\(NewJob.priorities.lowerBound), \(NewJob.priorities.upperBound))"
        return """
            WITH counts AS (
                SELECT queue, state, sum(n)::int8 AS n FROM (
                    SELECT queue, state, n FROM conveyor_queue_counts
                    UNION ALL
                    SELECT queue, state, n FROM conveyor_queue_count_changes
                ) AS kept
                GROUP BY queue, state HAVING sum(n) <> 0
            ), moment AS (SELECT coalesce(\(now)::timestamptz, now()) AS now)
            SELECT c.queue, c.state::text, c.n,
                   CASE WHEN c.state = \(unescaped: JobState.available.sql) THEN (
                       SELECT extract(epoch FROM moment.now - min(first.run_at))::float8
                       FROM \(unescaped: priorities) AS p(priority),
                            LATERAL (SELECT j.run_at FROM conveyor_jobs AS j
                                     WHERE j.state = \(unescaped: JobState.available.sql)
                                       AND j.queue = c.queue AND j.priority = p.priority
                                     ORDER BY j.run_at LIMIT 1) AS first
                       WHERE first.run_at <= moment.now)
                   END
            FROM counts AS c, moment
            ORDER BY c.queue, c.state
            """
    }
}

extension PostgresQuery {
    /// Appends ` AND …` selecting the jobs (`j`) of `target`.
    mutating func restrict(to target: JobTarget) {
        switch target {
        case .ids(let ids):
            append(" AND j.id = ANY($\(binds.count + 1)::uuid[])", ids)
        case .kind(let kind):
            append(" AND j.kind = $\(binds.count + 1)", kind)
        case .queue(let queue):
            append(" AND j.queue = $\(binds.count + 1)", queue)
        case .all:
            break
        }
    }

    mutating func append(_ sql: String, _ values: any PostgresDynamicTypeEncodable...) {
        self.sql += sql
        for value in values {
            self.binds.append(value)
        }
    }
}

/// `JobDeleteQueue`: deletes every job of a queue (benchmark clean-up).
enum JobDeleteQueue {
    static func query(queue: String) -> PostgresQuery {
        "DELETE FROM conveyor_jobs WHERE queue = \(queue) RETURNING id"
    }
}
