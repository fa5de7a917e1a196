import ConveyorCore
import Foundation
import PostgresNIO

/// The columns and decoding of a full ``JobRecord``, shared by the admin reads.
enum JobRecordRow {
    static let columns = """
        id, seq, state::text AS state, queue, kind, args::text AS args, priority, attempt, max_attempts, run_at,
        unique_key, tags, errors::text AS errors, inserted_at, enqueued_at, attempted_at, finished_at,
        locked_by, cancel_reason, cancelled_by, cancel_requested_at, lease_expires_at, result::text AS result,
        progress::float8 AS progress, progress_note, progress_at, limit_key, callback_url, reply_to
        """

    static func decode(_ rows: PostgresRowSequence) async throws -> [JobRecord] {
        var records: [JobRecord] = []
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        for try await row in rows {
            let r = row.makeRandomAccess()
            let stateText = try r["state"].decode(String.self)
            guard let state = JobState(rawValue: stateText) else {
                throw ConveyorStoreError.corruptRow("unknown state \(stateText)")
            }
            let errorsText = try r["errors"].decode(String.self)
            let errors = (try? decoder.decode([JobAttemptError].self, from: Data(errorsText.utf8))) ?? []
            records.append(
                JobRecord(
                    id: try r["id"].decode(UUID.self),
                    seq: Int(try r["seq"].decode(Int64.self)),
                    state: state,
                    queue: try r["queue"].decode(String.self),
                    kind: try r["kind"].decode(String.self),
                    args: try r["args"].decode(String.self),
                    priority: Int(try r["priority"].decode(Int16.self)),
                    attempt: Int(try r["attempt"].decode(Int32.self)),
                    maxAttempts: Int(try r["max_attempts"].decode(Int32.self)),
                    runAt: try r["run_at"].decode(Date.self),
                    uniqueKey: try r["unique_key"].decode(String?.self),
                    tags: try r["tags"].decode([String].self),
                    errors: errors,
                    insertedAt: try r["inserted_at"].decode(Date.self),
                    enqueuedAt: try r["enqueued_at"].decode(Date?.self),
                    attemptedAt: try r["attempted_at"].decode(Date?.self),
                    finishedAt: try r["finished_at"].decode(Date?.self),
                    lockedBy: try r["locked_by"].decode(String?.self),
                    cancelReason: try r["cancel_reason"].decode(String?.self),
                    cancelledBy: try r["cancelled_by"].decode(String?.self),
                    cancelRequestedAt: try r["cancel_requested_at"].decode(Date?.self),
                    leaseExpiresAt: try r["lease_expires_at"].decode(Date?.self),
                    result: try r["result"].decode(String?.self),
                    progress: try r["progress"].decode(Double?.self).map {
                        JobProgress(fraction: $0, note: try r["progress_note"].decode(String?.self) ?? "")
                    },
                    progressAt: try r["progress_at"].decode(Date?.self),
                    limitKey: try r["limit_key"].decode(String?.self),
                    callbackURL: try r["callback_url"].decode(String?.self),
                    replyTo: try r["reply_to"].decode(String?.self)))
        }
        return records
    }
}
