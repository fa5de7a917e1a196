import ConveyorCore
import Foundation
import PostgresNIO

/// `JobCompleteMany`: marks jobs `completed`, but only those still `running` at the attempt that
/// finished them, so a stale worker cannot complete a job that was rescued and claimed again.
enum JobCompleteMany {
    static func query(_ jobs: [(id: UUID, attempt: Int)], now: Date?) -> PostgresQuery {
        let ids = jobs.map(\.id)
        let attempts = jobs.map(\.attempt)
        return """
            UPDATE conveyor_jobs AS j
            SET state = \(unescaped: JobState.completed.sql),
                finished_at = coalesce(\(now)::timestamptz, now()),
                -- A job that reported progress is all done now, whatever its last report said.
                progress = CASE WHEN j.progress IS NULL THEN NULL ELSE 1 END,
                locked_by = NULL,
                lease_expires_at = NULL
            FROM UNNEST(\(ids)::uuid[], \(attempts)::int8[]) AS r(id, attempt)
            WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = \(unescaped: JobState.running.sql)
            RETURNING j.id
            """
    }
}
