import Foundation

extension JobRecord {
    /// The job as one JSON object (sorted keys): what `conveyor jobs … --json` prints and the dashboard's
    /// `/api/jobs` returns. `args` and `result` are embedded as JSON; times are RFC 3339; absent values
    /// are left out.
    public var json: String {
        var object: [String: Any] = [
            "id": id.uuidString.lowercased(), "seq": seq, "state": state.rawValue, "kind": kind, "queue": queue,
            "priority": priority, "attempt": attempt, "max_attempts": maxAttempts,
            "run_at": RFC3339.format(runAt), "inserted_at": RFC3339.format(insertedAt), "tags": tags,
            "errors": errors.map {
                ["attempt": $0.attempt, "at": RFC3339.format($0.at), "message": $0.message, "kind": $0.kind.rawValue] as [String: Any]
            },
        ]
        object["args"] = (try? JSONSerialization.jsonObject(with: Data(args.utf8))) ?? args
        if let value = attemptedAt { object["attempted_at"] = RFC3339.format(value) }
        if let value = finishedAt { object["finished_at"] = RFC3339.format(value) }
        if let value = enqueuedAt { object["enqueued_at"] = RFC3339.format(value) }
        if let value = lockedBy { object["locked_by"] = value }
        if let value = uniqueKey { object["unique_key"] = value }
        if let value = limitKey { object["limit_key"] = value }
        if let value = callbackURL { object["callback_url"] = value }
        if let value = replyTo { object["reply_to"] = value }
        if let value = cancelReason { object["cancel_reason"] = value }
        if let value = cancelledBy { object["cancelled_by"] = value }
        if let value = progress {
            object["progress"] = value.fraction
            if !value.note.isEmpty { object["progress_note"] = value.note }
        }
        if let value = progressAt { object["progress_at"] = RFC3339.format(value) }
        if let value = result {
            object["result"] = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) ?? value
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
