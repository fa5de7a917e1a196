public import ConveyorCore
public import Foundation
import PostgresNIO

extension PostgresJobStore {
    /// The newest slot handled per schedule name.
    public func scheduleStates() async throws -> [String: Date] {
        try await perform {
            var states: [String: Date] = [:]
            let rows = try await client.query("SELECT name, last_slot FROM conveyor_schedules", logger: logger)
            for try await (name, slot) in rows.decode((String, Date).self) { states[name] = slot }
            return states
        }
    }

    /// Inserts a schedule's slot jobs and records `through` as handled, in one transaction. The jobs'
    /// ids and unique keys derive from schedule and slot, so concurrent emitters insert each slot once.
    /// Returns the ids inserted (a slot another scheduler emitted first is not among them).
    public func emitScheduled(
        schedule name: String, jobs: [NewJob], through: Date, maxAttempts: @escaping @Sendable (String) -> Int
    ) async throws -> [UUID] {
        let insert = jobs.isEmpty ? nil : JobInsertMany.query(jobs, maxAttempts: maxAttempts, now: clock.bind)
        let record: PostgresQuery = """
            INSERT INTO conveyor_schedules AS s (name, last_slot, updated_at)
            VALUES (\(name), \(through), coalesce(\(clock.bind)::timestamptz, now()))
            ON CONFLICT (name) DO UPDATE
            SET last_slot = greatest(s.last_slot, excluded.last_slot), updated_at = excluded.updated_at
            """
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection in
                var inserted: [UUID] = []
                if let insert { inserted = try await JobInsertMany.decode(connection.query(insert, logger: logger)).inserted }
                _ = try await connection.query(record, logger: logger).collect()
                return inserted
            }
        }
    }
}
