import ConveyorCore
import Foundation

/// How jobs print: an aligned table, a detail view, or JSON lines for scripts.
enum JobOutput {
    static func table(_ jobs: [JobRecord]) -> String {
        var rows = [["ID", "STATE", "KIND", "QUEUE", "ATTEMPT", "RUN AT", "LAST ERROR"]]
        for job in jobs {
            rows.append([
                job.id.uuidString.lowercased(), job.state.rawValue, job.kind, job.queue, "\(job.attempt)/\(job.maxAttempts)",
                RFC3339.format(job.runAt), job.errors.last.map { String($0.message.prefix(60)) } ?? "",
            ])
        }
        return TextTable.render(rows)
    }

    static func details(_ job: JobRecord) -> String {
        var lines = [
            "id:           \(job.id.uuidString.lowercased())",
            "state:        \(job.state.rawValue)",
            "kind:         \(job.kind)",
            "queue:        \(job.queue)",
            "priority:     \(job.priority)",
            "attempt:      \(job.attempt) of \(job.maxAttempts)",
            "run at:       \(RFC3339.format(job.runAt))",
            "inserted at:  \(RFC3339.format(job.insertedAt))",
        ]
        if let at = job.attemptedAt { lines.append("attempted at: \(RFC3339.format(at))") }
        if let at = job.finishedAt { lines.append("finished at:  \(RFC3339.format(at))") }
        let escape = TerminalText.escape
        if let worker = job.lockedBy { lines.append("locked by:    \(escape(worker))") }
        if let key = job.uniqueKey { lines.append("unique key:   \(escape(key))") }
        if let key = job.limitKey { lines.append("limit key:    \(escape(key))") }
        if let url = job.callbackURL { lines.append("callback:     \(escape(url))") }
        if let list = job.replyTo { lines.append("reply to:     \(escape(list))") }
        if !job.tags.isEmpty { lines.append("tags:         \(escape(job.tags.joined(separator: ", ")))") }
        if let reason = job.cancelReason { lines.append("cancelled:    \(escape(reason))") }
        if let by = job.cancelledBy { lines.append("cancelled by: \(escape(by))") }
        lines.append("args:         \(escape(job.args))")
        if let progress = job.progress {
            let at = job.progressAt.map { " (at \(RFC3339.format($0)))" } ?? ""
            lines.append("progress:     \(JobOutput.percent(progress.fraction)) \(escape(progress.note))\(at)")
        }
        if let result = job.result { lines.append("result:       \(escape(result))") }
        if !job.errors.isEmpty {
            lines.append("errors:")
            for error in job.errors {
                lines.append("  attempt \(error.attempt) at \(RFC3339.format(error.at)) [\(error.kind.rawValue)]: \(escape(error.message))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A fraction as a percentage with one decimal at most ("42 %", "99.5 %").
    static func percent(_ fraction: Double) -> String {
        let value = (fraction * 1000).rounded() / 10
        return value == value.rounded() ? "\(Int(value)) %" : "\(value) %"
    }

    /// One JSON object per job (``JobRecord/json``).
    static func json(_ job: JobRecord) -> String { job.json }
}

/// Left-aligned columns separated by two spaces; cells are escaped for the terminal (``TerminalText``).
enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        let rows = rows.map { $0.map(TerminalText.escape) }
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
