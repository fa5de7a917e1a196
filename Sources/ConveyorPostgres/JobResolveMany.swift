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
        var keys: [String] = [], untils: [Date] = [], hasUntil: [Bool] = []
        for result in results {
            ids.append(result.id)
            attempts.append(result.attempt)
            let resolution = result.resolution.storable
            states.append(resolution.nextState.rawValue)
            requeue.append(resolution.nextState == .available)
            var delay = 0.0, refund = 0, errorKind = "", message = "", reason = "", json = ""
            var key = "", until: Date?
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
            case .throttle(let throttled, let when, let why):
                refund = 1
                key = throttled
                until = when
                message = why
            }
            keys.append(key)
            untils.append(until ?? Date(timeIntervalSince1970: 0))
            hasUntil.append(until != nil)
            delays.append(delay)
            refunds.append(refund)
            errorKinds.append(errorKind)
            messages.append(message)
            reasons.append(reason)
            kept.append(json)
        }
        // Throttles pause their keys cluster-wide (the longest pause wins). The arrays hold only the
        // throttled results, so a flush without one sends four empty arrays.
        var pauseIDs: [UUID] = [], pauseKeys: [String] = [], pauseUntils: [Date] = [], pauseReasons: [String] = []
        for (index, key) in keys.enumerated() where !key.isEmpty && hasUntil[index] {
            pauseIDs.append(ids[index])
            pauseKeys.append(key)
            pauseUntils.append(untils[index])
            pauseReasons.append(messages[index])
        }
        return """
            WITH paused AS (
                INSERT INTO conveyor_key_pauses (key, until, reason, paused_by, paused_at)
                SELECT DISTINCT ON (t.key) t.key, t.until, t.reason, 'job ' || t.id::text, coalesce(\(now)::timestamptz, now())
                FROM UNNEST(\(pauseIDs)::uuid[], \(pauseKeys)::text[], \(pauseUntils)::timestamptz[], \(pauseReasons)::text[])
                     AS t(id, key, until, reason)
                ORDER BY t.key, t.until DESC
                ON CONFLICT (key) DO UPDATE
                SET until = greatest(conveyor_key_pauses.until, excluded.until),
                    reason = CASE WHEN excluded.until > conveyor_key_pauses.until THEN excluded.reason ELSE conveyor_key_pauses.reason END,
                    paused_by = CASE WHEN excluded.until > conveyor_key_pauses.until THEN excluded.paused_by ELSE conveyor_key_pauses.paused_by END,
                    paused_at = CASE WHEN excluded.until > conveyor_key_pauses.until THEN excluded.paused_at ELSE conveyor_key_pauses.paused_at END
            )
            UPDATE conveyor_jobs AS j
            SET state = CASE WHEN r.requeue AND j.cancel_requested_at IS NOT NULL
                    THEN \(unescaped: JobState.cancelled.sql) ELSE r.state::conveyor_job_state END,
                attempt = j.attempt - r.refund,
                run_at = CASE WHEN NOT (r.requeue AND j.cancel_requested_at IS NULL) THEN j.run_at
                    -- Throttled on its own key: held by the pause (a resumed key releases it at once).
                    WHEN r.has_until AND r.key <> '' AND r.key = j.limit_key THEN coalesce(\(now)::timestamptz, now())
                    WHEN r.has_until THEN r.until
                    ELSE coalesce(\(now)::timestamptz, now()) + make_interval(secs => r.delay) END,
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
                progress = CASE WHEN r.state = 'completed' AND j.progress IS NOT NULL THEN 1 ELSE j.progress END,
                locked_by = NULL,
                lease_expires_at = NULL
            FROM UNNEST(\(ids)::uuid[], \(attempts)::int8[], \(states)::text[], \(requeue)::bool[],
                        \(delays)::float8[], \(refunds)::int8[], \(errorKinds)::text[], \(messages)::text[],
                        \(reasons)::text[], \(kept)::text[], \(keys)::text[], \(untils)::timestamptz[], \(hasUntil)::bool[])
                 AS r(id, attempt, state, requeue, delay, refund, error_kind, message, reason, result, key, until, has_until)
            WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = \(unescaped: JobState.running.sql)
            RETURNING j.id
            """
    }
}
