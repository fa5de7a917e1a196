import PostgresNIO

extension TestDatabase {
    /// Installs a row trigger on `conveyor_jobs` running the PL/pgSQL `body` (which ends with `RETURN NEW`
    /// or raises): how tests make PostgreSQL refuse a value, fail a write, or report a session setting,
    /// as a real server would, without a stand-in for the database.
    ///
    /// - Parameters:
    ///   - event: `BEFORE INSERT`, `BEFORE UPDATE`…
    ///   - when: an optional `WHEN` condition on `OLD`/`NEW`.
    public static func installTrigger(
        _ name: String, on client: PostgresClient, event: String, when: String? = nil, body: String
    ) async throws {
        _ = try await client.query(
            """
            CREATE FUNCTION \(unescaped: name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
            \(unescaped: body)
            END $$
            """, logger: logger
        ).collect()
        let condition = when.map { " WHEN (\($0))" } ?? ""
        _ = try await client.query(
            "CREATE TRIGGER \(unescaped: name) \(unescaped: event) ON conveyor_jobs FOR EACH ROW\(unescaped: condition) EXECUTE FUNCTION \(unescaped: name)()",
            logger: logger
        ).collect()
    }
}
