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

    /// The validated client configuration; throws a one-line configuration error naming the setting.
    func configuration() throws -> PostgresClient.Configuration {
        let setting = databaseURL == nil ? "DATABASE_URL" : "--database-url"
        guard let url = Settings.string(databaseURL, env: "DATABASE_URL") else {
            throw CommandError.configuration(
                setting: "DATABASE_URL", reason: "is not set; expected postgres://user:password@host:port/database")
        }
        var configuration: PostgresClient.Configuration
        do {
            configuration = try DatabaseURL.parse(url)
        } catch {
            throw CommandError.configuration(setting: setting, reason: error.reason)
        }
        configuration.options.maximumConnections = try Settings.int(
            maxConnections, env: "CONVEYOR_DB_POOL", flagName: "--max-connections", default: 10, range: 1...500)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Runs `body` with a running client whose server answered; fails in one line when it does not.
    func withClient<T: Sendable>(
        logger: Logger, checkSchema: Bool = true, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let configuration = try configuration()
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            try await Self.check(client, configuration: configuration, schema: checkSchema, logger: logger)
            return try await body(client)
        }
    }

    /// Fails with a one-line error when the server cannot be reached in 10 s, or the schema is missing.
    static func check(_ client: PostgresClient, configuration: PostgresClient.Configuration, schema: Bool, logger: Logger) async throws {
        let target = "\(configuration.host ?? "?"):\(configuration.port ?? 5432)/\(configuration.database ?? "")"
        let result = await withTaskGroup(of: Result<Bool, any Error>?.self) { group in
            group.addTask {
                do {
                    let rows = try await client.query("SELECT to_regclass('conveyor_jobs') IS NOT NULL", logger: logger)
                    for try await migrated in rows.decode(Bool.self) { return .success(migrated) }
                    return .success(false)
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch result {
        case nil:
            throw CommandError.unavailable("DATABASE_URL: no answer from PostgreSQL at \(target) within 10 s")
        case .failure(let error)?:
            throw CommandError.unavailable("DATABASE_URL: cannot use PostgreSQL at \(target): \(ConveyorStoreError.describe(error))")
        case .success(let migrated)?:
            if schema && !migrated {
                throw CommandError.failed("the database at \(target) has no Conveyor schema: run `conveyor migrate` first")
            }
        }
    }
}
