import ConveyorCore
import ConveyorPostgres
import Foundation
import Prometheus

extension Dashboard {
    /// `/metrics`: this process's instruments, then the queues' gauges read from PostgreSQL at each scrape
    /// (one `GROUP BY` over the jobs table; a queue that is gone simply stops appearing):
    ///
    /// - `conveyor_queue_jobs{queue,state}`: jobs per queue and state;
    /// - `conveyor_queue_oldest_wait_seconds{queue}`: how long the oldest due `available` job has waited;
    /// - `conveyor_kind_concurrency_limit{kind}` and `conveyor_kind_running{kind}`: each limited kind's
    ///   cluster-wide limit and its running jobs;
    /// - `conveyor_paused_keys`: limit keys paused now (throttled by an upstream, or by an operator).
    func metrics() async throws -> HTTPResponse {
        let statistics = try await store.queueStatistics()
        let limits = try await store.kindLimits()
        let pauses = try await store.keyPauses()
        var text = configuration.registry.emitToString()
        text += "# TYPE conveyor_queue_jobs gauge\n"
        for row in statistics {
            text += "conveyor_queue_jobs{queue=\"\(Self.label(row.queue))\",state=\"\(row.state.rawValue)\"} \(row.count)\n"
        }
        text += "# TYPE conveyor_queue_oldest_wait_seconds gauge\n"
        var oldest: [String: Double] = [:]
        for row in statistics { oldest[row.queue] = max(oldest[row.queue] ?? 0, row.oldestWaitSeconds ?? 0) }
        for (queue, seconds) in oldest.sorted(by: { $0.key < $1.key }) {
            text += "conveyor_queue_oldest_wait_seconds{queue=\"\(Self.label(queue))\"} \(seconds)\n"
        }
        text += "# TYPE conveyor_kind_concurrency_limit gauge\n"
        for limit in limits {
            guard let concurrency = limit.concurrency else { continue }
            text += "conveyor_kind_concurrency_limit{kind=\"\(Self.label(limit.kind))\"} \(concurrency)\n"
        }
        text += "# TYPE conveyor_kind_running gauge\n"
        for limit in limits { text += "conveyor_kind_running{kind=\"\(Self.label(limit.kind))\"} \(limit.running)\n" }
        text += "# TYPE conveyor_paused_keys gauge\nconveyor_paused_keys \(pauses.count)\n"
        return HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: Array(text.utf8))
    }

    /// A label value in the text format: backslash, quote and newline escaped.
    static func label(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
