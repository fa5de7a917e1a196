import ConveyorCore
public import Foundation
import PostgresNIO

/// A kind's cluster-wide concurrency limit as a worker declared it, and how many of its jobs run now.
public struct KindLimitStatus: Sendable, Equatable, Codable {
    /// The kind.
    public var kind: String
    /// The most of its jobs running at once, across the cluster.
    public var concurrency: Int
    /// How many run now (across every worker and queue; jobs whose lease expired count until rescued).
    public var running: Int
    /// The worker that last declared the limit, and when.
    public var declaredBy: String
    public var declaredAt: Date

    /// One JSON object (`conveyor limits --json`, `/api/limits`), times in RFC 3339.
    public var json: String {
        let object: [String: Any] = [
            "kind": kind, "concurrency": concurrency, "running": running, "declared_by": declaredBy,
            "declared_at": RFC3339.format(declaredAt),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    enum CodingKeys: String, CodingKey {
        case kind, concurrency, running
        case declaredBy = "declared_by"
        case declaredAt = "declared_at"
    }
}

extension PostgresJobStore {
    /// Records the limits a worker runs with (`limits`), and forgets those of `unlimited` kinds (kinds the
    /// worker serves without a limit), so `conveyor limits` shows what the fleet enforces.
    public func declareConcurrencyLimits(_ limits: [String: Int], unlimited: [String], by worker: String) async throws {
        let kinds = limits.keys.sorted()
        let caps = kinds.map { Int32(limits[$0] ?? 1) }
        let now = clock.bind
        let query: PostgresQuery = """
            WITH forgotten AS (
                DELETE FROM conveyor_kind_limits WHERE kind = ANY(\(unlimited)::text[])
            )
            INSERT INTO conveyor_kind_limits (kind, concurrency, declared_by, declared_at)
            SELECT k, c, \(worker), coalesce(\(now)::timestamptz, now())
            FROM unnest(\(kinds)::text[], \(caps)::int4[]) AS l(k, c)
            ON CONFLICT (kind) DO UPDATE
            SET concurrency = excluded.concurrency, declared_by = excluded.declared_by, declared_at = excluded.declared_at
            """
        try await perform { _ = try await client.query(query, logger: logger).collect() }
    }

    /// The declared limits, by kind, with each kind's running jobs now.
    public func concurrencyLimits() async throws -> [KindLimitStatus] {
        let query: PostgresQuery = """
            SELECT l.kind, l.concurrency, (SELECT count(*) FROM conveyor_jobs j
                    WHERE j.state = \(unescaped: JobState.running.sql) AND j.kind = l.kind),
                   l.declared_by, l.declared_at
            FROM conveyor_kind_limits l ORDER BY l.kind
            """
        return try await perform {
            var result: [KindLimitStatus] = []
            let rows = try await client.query(query, logger: logger)
            for try await (kind, concurrency, running, by, at) in rows.decode((String, Int32, Int64, String, Date).self) {
                result.append(KindLimitStatus(kind: kind, concurrency: Int(concurrency), running: Int(running), declaredBy: by, declaredAt: at))
            }
            return result
        }
    }
}
