import ConveyorCore
import ConveyorTestSupport
import Foundation
import Testing

@Suite("A binary that migrates anywhere")
struct MigrateAnywhereTests {
    @Test("the binary copied alone into an empty folder migrates a fresh database")
    func migrateFromEmptyFolder() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, url in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-alone-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let copy = folder.appendingPathComponent("conveyor")
            try FileManager.default.copyItem(at: ConveyorProcess.executable, to: copy)
            let result = try await ConveyorProcess.run(executable: copy, ["migrate"], environment: ["DATABASE_URL": url], in: folder)
            #expect(result.status == 0, "\(result.stderr)\(result.stdout)")
            var applied: [String] = []
            for try await name in try await client.query("SELECT name FROM conveyor_migrations ORDER BY name", logger: TestDatabase.logger).decode(String.self) {
                applied.append(name)
            }
            #expect(applied == (try TestDatabase.allMigrations()).migrations.map(\.name), "the runtime's migrations and the kinds'")
            #expect(applied.contains("meta_ads_0001_ad_changes.sql"))
            #expect(applied.contains("0008_bounded_quarantine.sql"))
        }
    }

    @Test("a worker refuses to start on a schema older than it needs, naming the missing migration")
    func refusesOldSchema() async throws {
        try await TestDatabase.withFresh { client, url in
            _ = try await client.query("DELETE FROM conveyor_migrations WHERE name = '0008_bounded_quarantine.sql'", logger: TestDatabase.logger).collect()
            let result = try await ConveyorProcess.run(["worker", "--no-ingest"], environment: ["DATABASE_URL": url])
            #expect(result.status == 1)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("lacks migration 0008_bounded_quarantine.sql that this binary needs: run `conveyor migrate` first"), "\(result.stderr)")
        }
    }
}
