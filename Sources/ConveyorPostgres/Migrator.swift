public import Foundation
public import Logging
public import PostgresNIO

/// Applies `migrations/*.sql` in name order, once each, recording a SHA-256 of each file.
///
/// The whole run is one transaction holding a transaction-level advisory lock, so concurrent
/// `conveyor migrate` processes serialise (and it works through PgBouncer's transaction pooling).
/// A file that was applied and then edited stops the run with ``ConveyorStoreError/migration(_:)``.
public struct Migrator: Sendable {
    /// One migration file.
    public struct Migration: Sendable, Equatable {
        /// The file name, e.g. `0001_jobs.sql`; also its identity in `conveyor_migrations`.
        public var name: String
        /// The SQL text.
        public var sql: String

        /// Creates a migration.
        public init(name: String, sql: String) {
            self.name = name
            self.sql = sql
        }
    }

    /// The migrations, sorted by name.
    public let migrations: [Migration]

    /// The migrations built into this library (`migrations/*.sql` of its source, embedded by
    /// `ops/embed-migrations`): a service runs them from code, and a binary copied alone onto a host
    /// migrates without any folder, as River's and Oban's do.
    public static var embedded: Migrator { Migrator(migrations: EmbeddedMigrations.all) }

    /// The names of ``migrations`` not applied to the database behind `connection` (all of them when
    /// it was never migrated). A database with migrations this build does not know is fine: a newer
    /// release migrated it, and every migration keeps the older code working.
    public func missing(on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var applied: Set<String> = []
        let exists = try await connection.query("SELECT to_regclass('conveyor_migrations') IS NOT NULL", logger: logger)
        for try await value in exists.decode(Bool.self) where value {
            for try await name in try await connection.query("SELECT name FROM conveyor_migrations", logger: logger).decode(String.self) {
                applied.insert(name)
            }
        }
        return migrations.map(\.name).filter { !applied.contains($0) }
    }

    /// Creates a migrator for the given migrations (sorted by name here).
    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.name < $1.name }
    }

    /// Loads every `*.sql` file of `directory`.
    public init(directory: URL) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw ConveyorStoreError.migration("cannot read migrations directory \(directory.path)")
        }
        var migrations: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            let url = directory.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path),
                let sql = String(data: data, encoding: .utf8)
            else {
                throw ConveyorStoreError.migration("cannot read \(url.path) as UTF-8")
            }
            migrations.append(Migration(name: name, sql: sql))
        }
        guard !migrations.isEmpty else {
            throw ConveyorStoreError.migration("no .sql files in \(directory.path)")
        }
        self.init(migrations: migrations)
    }

    /// The lock key serialising migration runs (`hashtext('conveyor.migrate')` would do too; a constant is clearer).
    static let lockKey: Int64 = 0x636F_6E76_6D69_6772

    /// Applies what is missing; returns the names applied (empty when the database is up to date).
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [String] {
        do {
            return try await client.withTransaction(logger: PostgresJobStore.defaultLogger) { connection in
                try await apply(on: connection, logger: logger)
            }
        } catch let error as PostgresTransactionError {
            if let cause = error.closureError as? ConveyorStoreError { throw cause }
            let cause = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError
            throw ConveyorStoreError.migration(cause.map(ConveyorStoreError.describe) ?? "transaction failed")
        } catch let error as PSQLError {
            throw ConveyorStoreError.migration(ConveyorStoreError.describe(error))
        }
    }

    private func apply(on connection: PostgresConnection, logger progress: Logger) async throws -> [String] {
        let logger = PostgresJobStore.defaultLogger
        try await connection.execute("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
        try await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS conveyor_migrations (
                name text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        // Runs a multi-statement script inside this transaction (the extended protocol allows one statement).
        try await connection.execute(
            """
            CREATE OR REPLACE FUNCTION pg_temp.conveyor_run_script(script text) RETURNS void
            LANGUAGE plpgsql AS $$ BEGIN EXECUTE script; END $$
            """, logger: logger)
        var applied: [String: String] = [:]
        for try await (name, checksum) in try await connection.query(
            "SELECT name, checksum FROM conveyor_migrations", logger: logger
        ).decode((String, String).self) {
            applied[name] = checksum
        }
        var done: [String] = []
        for migration in migrations {
            let checksum = try await self.checksum(of: migration.sql, on: connection, logger: logger)
            if let recorded = applied[migration.name] {
                guard recorded == checksum else {
                    throw ConveyorStoreError.migration(
                        "\(migration.name) was edited after it was applied (checksum \(checksum.prefix(12))… ≠ recorded \(recorded.prefix(12))…); add a new migration instead")
                }
                continue
            }
            do {
                try await connection.execute("SELECT pg_temp.conveyor_run_script(\(migration.sql))", logger: logger)
            } catch let error as PSQLError {
                throw ConveyorStoreError.migration("\(migration.name): \(ConveyorStoreError.describe(error))")
            }
            try await connection.execute(
                "INSERT INTO conveyor_migrations (name, checksum) VALUES (\(migration.name), \(checksum))",
                logger: logger)
            progress.info("applied migration", metadata: ["migration": "\(migration.name)"])
            done.append(migration.name)
        }
        return done
    }

    private func checksum(of sql: String, on connection: PostgresConnection, logger: Logger) async throws -> String {
        let rows = try await connection.query(
            "SELECT encode(sha256(convert_to(\(sql), 'UTF8')), 'hex')", logger: logger)
        for try await value in rows.decode(String.self) { return value }
        throw ConveyorStoreError.migration("checksum query returned nothing")
    }
}

extension PostgresConnection {
    /// Runs a statement and drains its rows, so that an error raised while executing surfaces here.
    fileprivate func execute(_ query: PostgresQuery, logger: Logger) async throws {
        _ = try await self.query(query, logger: logger).collect()
    }
}
