import ArgumentParser
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor migrate`: the release role.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply migrations/*.sql that are not applied yet (idempotent; safe to run concurrently).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "The migrations folder (env: CONVEYOR_MIGRATIONS; default: ./migrations, else the one next to the binary's checkout).")
    var migrations: String?

    func run() async throws {
        let logger = Logger(label: "conveyor.migrate")
        let directory = try Self.migrationsDirectory(migrations)
        let migrator: Migrator
        do {
            migrator = try Migrator(directory: directory)
        } catch {
            throw CommandError.configuration(setting: migrations == nil ? "CONVEYOR_MIGRATIONS" : "--migrations", reason: "\(error)")
        }
        try await database.withClient(logger: logger, checkSchema: false, timeout: false) { client in
            do {
                let applied = try await migrator.migrate(client: client, logger: logger)
                logger.info(
                    applied.isEmpty ? "database is up to date" : "migrations applied",
                    metadata: ["applied": "\(applied.joined(separator: ","))", "known": "\(migrator.migrations.count)"])
            } catch {
                throw CommandError.failed("\(error)")
            }
        }
    }

    static func migrationsDirectory(_ flag: String?) throws -> URL {
        if let path = Settings.string(flag, env: "CONVEYOR_MIGRATIONS") {
            return URL(fileURLWithPath: path)
        }
        let local = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("migrations")
        if FileManager.default.fileExists(atPath: local.path) { return local }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("migrations")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("0001_jobs.sql").path) { return candidate }
            directory.deleteLastPathComponent()
        }
        throw CommandError.configuration(setting: "CONVEYOR_MIGRATIONS", reason: "no migrations folder found; pass --migrations PATH")
    }
}
