@_exported import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

/// A fresh, migrated PostgreSQL database per test, on the throwaway server that `ops/test` starts.
///
/// Tests that need it fail loudly when `CONVEYOR_TEST_DATABASE_URL` is missing: they are never skipped.
public enum TestDatabase {
    /// The repository's root, found from this file's path.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `migrations/` folder.
    public static var migrationsDirectory: URL { repositoryRoot.appendingPathComponent("migrations") }

    /// The runtime's migrations and every kind's own (`Sources/ConveyorKind*/migrations`), from the files:
    /// what `conveyor migrate` applies.
    public static func allMigrations() throws -> Migrator {
        var migrations = try Migrator(directory: migrationsDirectory).migrations
        let sources = repositoryRoot.appendingPathComponent("Sources")
        for target in try FileManager.default.contentsOfDirectory(atPath: sources.path).sorted() where target.hasPrefix("ConveyorKind") {
            let folder = sources.appendingPathComponent(target).appendingPathComponent("migrations")
            if FileManager.default.fileExists(atPath: folder.path) { migrations += try Migrator(directory: folder).migrations }
        }
        return Migrator(migrations: migrations)
    }

    /// The test server is not configured.
    public struct NotConfigured: Error, CustomStringConvertible {
        public var variable: String
        public var description: String {
            "\(variable) is not set: these tests need the throwaway PostgreSQL and Redis that `ops/test` starts (README: run `ops/test`)"
        }
    }

    /// The admin URL of the test server.
    public static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["CONVEYOR_TEST_DATABASE_URL"], !url.isEmpty else {
            throw NotConfigured(variable: "CONVEYOR_TEST_DATABASE_URL")
        }
        return url
    }

    /// A logger that only reports warnings, to keep test output readable.
    public static var logger: Logger {
        var logger = Logger(label: "conveyor.test")
        logger.logLevel = .warning
        return logger
    }

    /// Creates a fresh database, optionally migrated, runs `body` with a running client and the
    /// database's URL, then drops it.
    public static func withFresh<T: Sendable>(
        migrate: Bool = true,
        _ body: @Sendable (PostgresClient, String) async throws -> T
    ) async throws -> T {
        let serverURL = try serverURL()
        let name = "conveyor_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await withClient(url: serverURL) { admin in
            try await admin.query("CREATE DATABASE \(unescaped: name)", logger: logger)
        }
        let url = replacingDatabase(in: serverURL, with: name)
        do {
            let result = try await withClient(url: url) { client in
                if migrate {
                    try await allMigrations().migrate(client: client, logger: logger)
                }
                return try await body(client, url)
            }
            try await drop(name, serverURL: serverURL)
            return result
        } catch {
            try? await drop(name, serverURL: serverURL)
            throw error
        }
    }

    @discardableResult
    /// Runs `body` with a client connected to `url`, running for the duration of the call.
    public static func withClient<T: Sendable>(
        url: String, maxConnections: Int = 8, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        var configuration = try DatabaseURL.parse(url)
        configuration.options.maximumConnections = maxConnections
        var quiet = logger
        quiet.logLevel = .error
        let client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    private static func drop(_ name: String, serverURL: String) async throws {
        try await withClient(url: serverURL) { admin in
            try await admin.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: logger)
        }
    }

    /// The single integer a query such as `SELECT count(*) …` returns.
    public static func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await value in rows.decode(Int64.self) { return Int(value) }
        return 0
    }

    /// `url` with its database name replaced.
    public static func replacingDatabase(in url: String, with name: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/\(name)"
        return components.string!
    }
}

/// Waits until `condition` holds, checking every 20 ms; throws after `timeout`. For states only the
/// database can tell (a child process's effect): everything in-process is awaited through events.
public func eventually(
    _ what: String, timeout: Duration = .seconds(60), _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what, after: timeout) }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// ``eventually(_:timeout:_:)`` ran out of time.
public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    public var after: Duration
    public var description: String { "still waiting after \(after): \(what)" }
}
