import ConveyorCore
import Foundation
import PostgresNIO

/// `JobResolveMany`: writes any resolutions (completion with or without a result, retry, dead, snooze,
/// cancel, release) in one statement, appending failures to the error history; guarded by state and
/// attempt like completion.
/// A job whose cancellation was requested while it ran is not requeued: it ends `cancelled`. Each
/// resolution is written as ``JobResolution/storable`` (NUL-free, bounded messages, clamped delays),
/// so no result a handler produces makes PostgreSQL refuse the statement.
enum JobResolveMany {
    static func query(_ results: [(id: UUID, attempt: Int, resolution: JobResolution)], now: Date?) -> PostgresQuery {
        var ids: [UUID] = [], attempts: [Int] = [], states: [String] = [], requeue: [Bool] = []
        var delays: [Double] = [], refunds: [Int] = [], errorKinds: [String] = [], messages: [String] = []
        var reasons: [String] = [], kept: [String] = []
        for result in results {
            ids.append(result.id)
            attempts.append(result.attempt)
            let resolution = result.resolution.storable
            states.append(resolution.nextState.rawValue)
            requeue.append(resolution.nextState == .available)
            var delay = 0.0, refund = 0, errorKind = "", message = "", reason = "", json = ""
            switch resolution {
            case .complete: break
            case .completeWithResult(let result): json = result
            case .retry(let after, let failure):
                delay = after.seconds
                errorKind = failure.kind.rawValue
                message = failure.message
            case .dead(let failure):
                errorKind = failure.kind.rawValue
                message = failure.message
            case .snooze(let after):
                delay = after.seconds
                refund = 1
            case .cancel(let why):
                reason = why
            case .release:
                refund = 1
            }
            delays.append(delay)
            refunds.append(refund)
            errorKinds.append(errorKind)
            messages.append(message)
            reasons.append(reason)
            kept.append(json)
        }
        return """
            UPDATE conveyor_jobs AS j
            SET state = CASE WHEN r.requeue AND j.cancel_requested_at IS NOT NULL
                    THEN \(unescaped: JobState.cancelled.sql) ELSE r.state::conveyor_job_state END,
                attempt = j.attempt - r.refund,
                run_at = CASE WHEN r.requeue AND j.cancel_requested_at IS NULL
                    THEN coalesce(\(now)::timestamptz, now()) + make_interval(secs => r.delay)
                    ELSE j.run_at END,
                finished_at = CASE WHEN r.requeue AND j.cancel_requested_at IS NULL
                    THEN NULL ELSE coalesce(\(now)::timestamptz, now()) END,
                errors = CASE WHEN r.error_kind = '' THEN j.errors
                    ELSE j.errors || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempt,
                        'at', extract(epoch FROM coalesce(\(now)::timestamptz, now())),
                        'message', r.message,
                        'kind', r.error_kind)) END,
                cancel_reason = coalesce(NULLIF(r.reason, ''), j.cancel_reason),
                result = coalesce(NULLIF(r.result, '')::jsonb, j.result),
                locked_by = NULL,
                lease_expires_at = NULL
            FROM UNNEST(\(ids)::uuid[], \(attempts)::int8[], \(states)::text[], \(requeue)::bool[],
                        \(delays)::float8[], \(refunds)::int8[], \(errorKinds)::text[], \(messages)::text[],
                        \(reasons)::text[], \(kept)::text[])
                 AS r(id, attempt, state, requeue, delay, refund, error_kind, message, reason, result)
            WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = \(unescaped: JobState.running.sql)
            RETURNING j.id
            """
    }
}
