import ArgumentParser
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

/// `--database-url` / `DATABASE_URL`, shared by every command that talks to PostgreSQL.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "postgres://user:password@host:port/database (env: DATABASE_URL)")
    var databaseURL: String?

    @Option(name: .customLong("max-connections"), help: "Connection pool size (env: CONVEYOR_DB_POOL; default 10).")
    var maxConnections: Int?

    @Option(
        name: .customLong("statement-timeout"),
        help: "Longest a statement may run before PostgreSQL cancels it, e.g. 30s, 2m, off (env: CONVEYOR_STATEMENT_TIMEOUT; default 30s; migrations run without).")
    var statementTimeout: String?

    /// `statement_timeout` for the pool's sessions; `nil` for none.
    func statementTimeoutSetting() throws -> Duration? {
        try Settings.duration(statementTimeout, env: "CONVEYOR_STATEMENT_TIMEOUT", flagName: "--statement-timeout", default: .seconds(30))
    }

    /// The validated database URL; throws a one-line configuration error naming the setting.
    func url() throws -> DatabaseURL {
        let setting = databaseURL == nil ? "DATABASE_URL" : "--database-url"
        guard let text = Settings.string(databaseURL, env: "DATABASE_URL") else {
            throw CommandError.configuration(
                setting: "DATABASE_URL", reason: "is not set; expected postgres://user:password@host:port/database")
        }
        do {
            return try DatabaseURL(text)
        } catch {
            throw CommandError.configuration(setting: setting, reason: error.reason)
        }
    }

    /// Runs `body` with a running pool, after one direct connection proved the server answers (and, with
    /// `checkSchema`, that it is migrated); otherwise fails in one line with the server's reason.
    ///
    /// Every session of the pool runs with `statement_timeout` (``statementTimeoutSetting()``, unless
    /// `timeout` is false), so a statement stuck on a lock or a server in trouble cannot hold a process
    /// past its shutdown; idle connections are probed every 30 s (PostgresNIO's keep-alive query).
    func withClient<T: Sendable>(
        logger: Logger, checkSchema: Bool = true, timeout: Bool = true, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let url = try url()
        var configuration = url.clientConfiguration
        configuration.options.maximumConnections = try Settings.int(
            maxConnections, env: "CONVEYOR_DB_POOL", flagName: "--max-connections", default: 10, range: 1...500)
        if timeout, let limit = try statementTimeoutSetting() {
            configuration.options.additionalStartupParameters.append(("statement_timeout", "\(max(1, Int64(limit.seconds * 1000)))"))
        }
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(30))
        try await Self.check(url, schema: checkSchema, logger: logger)
        // The pool's own logging (failed reconnections at info, a lease racing `run()` at warning) is
        // noise next to our reports: every failed statement is thrown and logged with job context.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Connects once (5 s timeout) and, with `schema`, checks that every migration built into this
    /// binary is applied (a database migrated by a newer release passes).
    static func check(_ url: DatabaseURL, schema: Bool, logger: Logger) async throws {
        var quiet = logger
        quiet.logLevel = .critical
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: url.connectionConfiguration(), id: 0, logger: quiet)
        } catch {
            throw CommandError.unavailable("DATABASE_URL: cannot connect to PostgreSQL at \(url): \(ConveyorStoreError.describe(error))")
        }
        var missing: [String] = []
        var failure: (any Error)?
        do {
            if schema { missing = try await ConveyorKinds.migrator.missing(on: connection, logger: quiet) }
        } catch {
            failure = error
        }
        try? await connection.close()
        if let failure {
            throw CommandError.unavailable("DATABASE_URL: PostgreSQL at \(url) failed a query: \(ConveyorStoreError.describe(failure))")
        }
        if missing.count == ConveyorKinds.migrator.migrations.count {
            throw CommandError.failed("the database at \(url) has no Conveyor schema: run `conveyor migrate` first")
        }
        if let first = missing.first {
            let more = missing.count > 1 ? " and \(missing.count - 1) more" : ""
            throw CommandError.failed("the database at \(url) lacks migration \(first)\(more) that this binary needs: run `conveyor migrate` first")
        }
    }
}
