import ArgumentParser
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor migrate`: the release role.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the migrations built into this binary that are not applied yet (idempotent; safe to run concurrently).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "A migrations folder to apply instead of the migrations built into this binary (env: CONVEYOR_MIGRATIONS).")
    var migrations: String?

    func run() async throws {
        let logger = Logger(label: "conveyor.migrate")
        let migrator: Migrator
        if let path = Settings.string(migrations, env: "CONVEYOR_MIGRATIONS") {
            do {
                migrator = try Migrator(directory: URL(fileURLWithPath: path))
            } catch {
                throw CommandError.configuration(setting: migrations == nil ? "CONVEYOR_MIGRATIONS" : "--migrations", reason: "\(error)")
            }
        } else {
            migrator = ConveyorKinds.migrator
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
}
