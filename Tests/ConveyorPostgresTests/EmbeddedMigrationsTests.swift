import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

@Suite("Embedded migrations")
struct EmbeddedMigrationsTests {
    @Test("the migrations built in are exactly migrations/*.sql (run ops/embed-migrations after adding one)")
    func embeddedEqualsFiles() throws {
        let files = try Migrator(directory: TestDatabase.migrationsDirectory).migrations
        let embedded = Migrator.embedded.migrations
        #expect(embedded.map(\.name) == files.map(\.name), "run ops/embed-migrations")
        for (built, file) in zip(embedded, files) {
            #expect(built.sql == file.sql, "\(file.name) differs from its embedded copy: run ops/embed-migrations")
        }
    }

    @Test("a service migrates from code with the embedded migrations, and learns what a database lacks")
    func migrateFromCode() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, _ in
            let migrator = Migrator.embedded
            let names = migrator.migrations.map(\.name)
            let missingBefore = try await client.withConnection { try await migrator.missing(on: $0, logger: TestDatabase.logger) }
            #expect(missingBefore == names)
            #expect(try await migrator.migrate(client: client, logger: TestDatabase.logger) == names)
            let missingAfter = try await client.withConnection { try await migrator.missing(on: $0, logger: TestDatabase.logger) }
            #expect(missingAfter.isEmpty)
        }
    }
}
