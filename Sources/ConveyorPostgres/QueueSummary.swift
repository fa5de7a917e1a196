public import ConveyorCore
import Foundation

/// One queue at a glance: jobs per state, how long its oldest due job has waited, and its pause.
public struct QueueSummary: Sendable, Equatable {
    /// The queue's name.
    public var queue: String
    /// Jobs per state (every state present, 0 when none).
    public var counts: [JobState: Int]
    /// Seconds the oldest due `available` job has waited; nil when none is due.
    public var oldestWaitSeconds: Double?
    /// Who paused it and when; nil while it runs.
    public var pause: PostgresJobStore.QueuePause?

    /// The summary as one JSON object (sorted keys), as `conveyor queues --json` prints it and the
    /// dashboard's `/api/queues` returns it: `queue`, a count per state, `oldest_wait_seconds` (0 when
    /// none waits), `paused`, and `paused_by` / `paused_at` when paused.
    public var json: String {
        var object: [String: Any] = ["queue": queue, "paused": pause != nil, "oldest_wait_seconds": oldestWaitSeconds ?? 0]
        for state in JobState.allCases { object[state.rawValue] = counts[state] ?? 0 }
        if let pause {
            object["paused_by"] = pause.pausedBy
            object["paused_at"] = RFC3339.format(pause.pausedAt)
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

extension PostgresJobStore {
    /// Every queue with jobs or a pause, by name.
    public func queueSummaries() async throws -> [QueueSummary] {
        let statistics = try await queueStatistics()
        let pauses = Dictionary(uniqueKeysWithValues: try await pausedQueues().map { ($0.queue, $0) })
        let byQueue = Dictionary(grouping: statistics, by: \.queue)
        return Set(byQueue.keys).union(pauses.keys).sorted().map { queue in
            let rows = byQueue[queue] ?? []
            return QueueSummary(
                queue: queue,
                counts: Dictionary(uniqueKeysWithValues: JobState.allCases.map { state in (state, rows.first { $0.state == state }?.count ?? 0) }),
                oldestWaitSeconds: rows.compactMap(\.oldestWaitSeconds).max(), pause: pauses[queue])
        }
    }
}
