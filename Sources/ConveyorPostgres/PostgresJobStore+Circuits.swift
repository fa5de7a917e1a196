public import Foundation
import PostgresNIO

/// One worker's view of one upstream's circuit breaker (`conveyor_circuits`).
public struct CircuitReport: Sendable, Equatable {
    public var upstream: String
    public var worker: String
    /// `closed`, `half_open` or `open`.
    public var state: String
    public var since: Date
    public var openUntil: Date?
    public var reportedAt: Date

    public init(upstream: String, worker: String, state: String, since: Date, openUntil: Date?, reportedAt: Date) {
        self.upstream = upstream
        self.worker = worker
        self.state = state
        self.since = since
        self.openUntil = openUntil
        self.reportedAt = reportedAt
    }

    public var json: String {
        var object: [String: Any] = [
            "upstream": upstream, "worker": worker, "state": state, "since": RFC3339Text.format(since), "reported_at": RFC3339Text.format(reportedAt),
        ]
        if let openUntil { object["open_until"] = RFC3339Text.format(openUntil) }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

enum RFC3339Text {
    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

extension PostgresJobStore {
    /// Publishes `worker`'s breakers (upstream, state, since, open until), replacing its earlier report.
    public func publishCircuits(worker: String, _ circuits: [(upstream: String, state: String, since: Date, openUntil: Date?)]) async throws {
        guard !circuits.isEmpty else { return }
        let now = clock.bind
        // PostgresNIO binds no arrays of optionals: -1 stands for "not open".
        let openUntil = circuits.map { $0.openUntil?.timeIntervalSince1970 ?? -1 }
        let query: PostgresQuery = """
            INSERT INTO conveyor_circuits (upstream, worker, state, since, open_until, reported_at)
            SELECT u, \(worker), s, t, CASE WHEN o < 0 THEN NULL ELSE to_timestamp(o) END, coalesce(\(now)::timestamptz, now())
            FROM unnest(\(circuits.map(\.upstream))::text[], \(circuits.map(\.state))::text[], \(circuits.map(\.since))::timestamptz[],
                        \(openUntil)::float8[]) AS c(u, s, t, o)
            ON CONFLICT (upstream, worker) DO UPDATE SET state = excluded.state, since = excluded.since,
                open_until = excluded.open_until, reported_at = excluded.reported_at
            """
        try await perform { _ = try await client.query(query, logger: logger) }
    }

    /// The breakers reported within `freshness` (default 2 minutes: workers publish every 5 s), open ones first.
    public func circuits(freshness: Duration = .seconds(120)) async throws -> [CircuitReport] {
        let now = clock.bind
        let seconds = Double(freshness.components.seconds)
        let query: PostgresQuery = """
            SELECT upstream, worker, state, since, open_until, reported_at FROM conveyor_circuits
            WHERE reported_at > coalesce(\(now)::timestamptz, now()) - make_interval(secs => \(seconds))
            ORDER BY state = 'closed', upstream, worker
            """
        return try await perform {
            var result: [CircuitReport] = []
            let rows = try await client.query(query, logger: logger)
            for try await (upstream, worker, state, since, openUntil, reportedAt) in rows.decode((String, String, String, Date, Date?, Date).self) {
                result.append(CircuitReport(upstream: upstream, worker: worker, state: state, since: since, openUntil: openUntil, reportedAt: reportedAt))
            }
            return result
        }
    }
}
