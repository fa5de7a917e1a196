public import ConveyorCore
public import Foundation
import PostgresNIO

/// A kind's cluster-wide limits as a worker declared them, and how many of its jobs run now.
public struct KindLimitStatus: Sendable, Equatable {
    /// The kind.
    public var kind: String
    /// The most of its jobs running at once, across the cluster, if limited.
    public var concurrency: Int?
    /// The most starts per window and limit key, and the window in seconds, if rate-limited.
    public var rateStarts: Int?
    public var rateSeconds: Double?
    /// How many run now (across every worker and queue; jobs whose lease expired count until rescued).
    public var running: Int
    /// The worker that last declared the limits, and when.
    public var declaredBy: String
    public var declaredAt: Date

    /// One JSON object (`conveyor limits --json`, `/api/limits`), times in RFC 3339.
    public var json: String {
        var object: [String: Any] = ["kind": kind, "running": running, "declared_by": declaredBy, "declared_at": RFC3339.format(declaredAt)]
        object["concurrency"] = concurrency ?? NSNull()
        if let rateStarts, let rateSeconds {
            object["rate"] = ["starts": rateStarts, "per_seconds": rateSeconds]
        } else {
            object["rate"] = NSNull()
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// "30 per 60 s", or "–".
    public var rateText: String {
        guard let rateStarts, let rateSeconds else { return "–" }
        return "\(rateStarts) per \(Duration.seconds(rateSeconds).readable) per key"
    }
}

/// A paused limit key: no job with it starts before ``until``.
public struct KeyPause: Sendable, Equatable {
    public var key: String
    public var until: Date
    /// Why (the throttling handler's message, or the operator's).
    public var reason: String
    /// `job <id>` for a handler's throttle, or the operator.
    public var pausedBy: String
    public var pausedAt: Date
    /// How many jobs with the key wait.
    public var waiting: Int

    /// One JSON object (`conveyor limits --json`, `/api/limits`).
    public func json(now: Date) -> String {
        let object: [String: Any] = [
            "key": key, "until": RFC3339.format(until), "seconds_left": max(0, until.timeIntervalSince(now)), "reason": reason,
            "paused_by": pausedBy, "paused_at": RFC3339.format(pausedAt), "waiting": waiting,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

extension PostgresJobStore {
    /// Records the limits a worker runs with (`limits`), and forgets those of `unlimited` kinds (kinds the
    /// worker serves without a limit), so `conveyor limits` shows what the fleet enforces.
    public func declareLimits(_ limits: [String: KindLimit], unlimited: [String], by worker: String) async throws {
        let kinds = limits.keys.sorted()
        let caps = kinds.map { Int32(limits[$0]?.concurrency ?? 0) }
        let starts = kinds.map { Int32(limits[$0]?.rate?.starts ?? 0) }
        let seconds = kinds.map { limits[$0]?.rate?.window.seconds ?? 0 }
        let now = clock.bind
        let query: PostgresQuery = """
            WITH forgotten AS (
                DELETE FROM conveyor_kind_limits WHERE kind = ANY(\(unlimited)::text[])
            )
            INSERT INTO conveyor_kind_limits (kind, concurrency, rate_starts, rate_seconds, declared_by, declared_at)
            SELECT k, NULLIF(c, 0), NULLIF(r, 0), NULLIF(s, 0), \(worker), coalesce(\(now)::timestamptz, now())
            FROM unnest(\(kinds)::text[], \(caps)::int4[], \(starts)::int4[], \(seconds)::float8[]) AS l(k, c, r, s)
            ON CONFLICT (kind) DO UPDATE
            SET concurrency = excluded.concurrency, rate_starts = excluded.rate_starts, rate_seconds = excluded.rate_seconds,
                declared_by = excluded.declared_by, declared_at = excluded.declared_at
            """
        try await perform { _ = try await client.query(query, logger: logger).collect() }
    }

    /// The declared limits, by kind, with each kind's running jobs now.
    public func kindLimits() async throws -> [KindLimitStatus] {
        let query: PostgresQuery = """
            SELECT l.kind, l.concurrency, l.rate_starts, l.rate_seconds, (SELECT count(*) FROM conveyor_jobs j
                    WHERE j.state = \(unescaped: JobState.running.sql) AND j.kind = l.kind),
                   l.declared_by, l.declared_at
            FROM conveyor_kind_limits l ORDER BY l.kind
            """
        return try await perform {
            var result: [KindLimitStatus] = []
            let rows = try await client.query(query, logger: logger)
            for try await (kind, concurrency, starts, seconds, running, by, at) in rows.decode(
                (String, Int32?, Int32?, Double?, Int64, String, Date).self)
            {
                result.append(
                    KindLimitStatus(
                        kind: kind, concurrency: concurrency.map(Int.init), rateStarts: starts.map(Int.init), rateSeconds: seconds,
                        running: Int(running), declaredBy: by, declaredAt: at))
            }
            return result
        }
    }

    /// The limit keys paused now, soonest to end first, with the jobs waiting on each.
    public func keyPauses() async throws -> [KeyPause] {
        let now = clock.bind
        let query: PostgresQuery = """
            SELECT p.key, p.until, p.reason, p.paused_by, p.paused_at,
                   (SELECT count(*) FROM conveyor_jobs j WHERE j.limit_key = p.key AND j.state = \(unescaped: JobState.available.sql))
            FROM conveyor_key_pauses p
            WHERE p.until > coalesce(\(now)::timestamptz, now())
            ORDER BY p.until, p.key
            """
        return try await perform {
            var result: [KeyPause] = []
            let rows = try await client.query(query, logger: logger)
            for try await (key, until, reason, by, at, waiting) in rows.decode((String, Date, String, String, Date, Int64).self) {
                result.append(KeyPause(key: key, until: until, reason: reason, pausedBy: by, pausedAt: at, waiting: Int(waiting)))
            }
            return result
        }
    }

    /// Pauses `key` until `until` (an operator's hold, or a test's); the longer pause wins.
    @discardableResult
    public func pause(key: String, until: Date, reason: String, by: String) async throws -> Bool {
        let now = clock.bind
        let query: PostgresQuery = """
            INSERT INTO conveyor_key_pauses (key, until, reason, paused_by, paused_at)
            VALUES (\(key), \(until), \(reason), \(by), coalesce(\(now)::timestamptz, now()))
            ON CONFLICT (key) DO UPDATE SET until = excluded.until, reason = excluded.reason,
                paused_by = excluded.paused_by, paused_at = excluded.paused_at
            WHERE conveyor_key_pauses.until < excluded.until
            RETURNING key
            """
        return try await !ids(query: query).isEmpty
    }

    /// Lifts the pause of `key` at once and wakes the workers; false when it was not paused.
    @discardableResult
    public func resume(key: String) async throws -> Bool {
        let now = clock.bind
        let query: PostgresQuery = """
            WITH lifted AS (
                DELETE FROM conveyor_key_pauses WHERE key = \(key) AND until > coalesce(\(now)::timestamptz, now()) RETURNING key
            )
            SELECT l.key FROM lifted l
            -- Idle workers look again at once (the producers treat it as new work in every queue).
            WHERE (SELECT count(*) FROM (SELECT pg_notify(\(unescaped: "'\(JobInsertMany.channel)'"), '') FROM lifted) n) >= 0
            """
        return try await !ids(query: query).isEmpty
    }

    /// Deletes pauses that ended, rate windows that closed and stale breaker reports (the maintenance leader's pass).
    public func pruneLimitState() async throws -> Int {
        let now = clock.bind
        let query: PostgresQuery = """
            WITH pauses AS (
                DELETE FROM conveyor_key_pauses WHERE until <= coalesce(\(now)::timestamptz, now()) RETURNING 1
            ), windows AS (
                DELETE FROM conveyor_key_starts WHERE window_end <= coalesce(\(now)::timestamptz, now()) RETURNING 1
            ), circuits AS (
                -- Breakers of workers that stopped publishing a day ago.
                DELETE FROM conveyor_circuits WHERE reported_at < coalesce(\(now)::timestamptz, now()) - interval '1 day' RETURNING 1
            )
            SELECT ((SELECT count(*) FROM pauses) + (SELECT count(*) FROM windows) + (SELECT count(*) FROM circuits))::int8
            """
        return try await perform {
            for try await count in try await client.query(query, logger: logger).decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    private func ids(query: PostgresQuery) async throws -> [String] {
        try await perform {
            var keys: [String] = []
            for try await key in try await client.query(query, logger: logger).decode(String.self) { keys.append(key) }
            return keys
        }
    }
}
