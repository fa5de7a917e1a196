import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Migrations")
struct MigratorTests {
    @Test("applies every file once; a second run is a no-op")
    func idempotent() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, _ in
            let migrator = try Migrator(directory: TestDatabase.migrationsDirectory)
            let first = try await migrator.migrate(client: client, logger: TestDatabase.logger)
            #expect(first == migrator.migrations.map(\.name))
            #expect(first.first == "0001_jobs.sql")
            let second = try await migrator.migrate(client: client, logger: TestDatabase.logger)
            #expect(second.isEmpty)
        }
    }

    @Test("an applied file that was edited stops the run with an error naming it")
    func detectsEdits() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, _ in
            let original = Migrator(migrations: [.init(name: "0001_a.sql", sql: "CREATE TABLE a (x int);")])
            try await original.migrate(client: client, logger: TestDatabase.logger)
            let edited = Migrator(migrations: [
                .init(name: "0001_a.sql", sql: "CREATE TABLE a (x bigint);"),
                .init(name: "0002_b.sql", sql: "CREATE TABLE b (x int);"),
            ])
            await #expect {
                try await edited.migrate(client: client, logger: TestDatabase.logger)
            } throws: { error in
                String(describing: error).contains("0001_a.sql was edited")
            }
            // Nothing of the failed run was applied.
            let rows = try await client.query("SELECT count(*) FROM conveyor_migrations", logger: TestDatabase.logger)
            for try await count in rows.decode(Int64.self) { #expect(count == 1) }
        }
    }

    @Test("a failing migration reports the file and the server's message, and applies nothing")
    func failingMigration() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, _ in
            let migrator = Migrator(migrations: [
                .init(name: "0001_ok.sql", sql: "CREATE TABLE ok (x int);"),
                .init(name: "0002_bad.sql", sql: "CREATE TABLE bad (x nonsense_type);"),
            ])
            await #expect {
                try await migrator.migrate(client: client, logger: TestDatabase.logger)
            } throws: { error in
                let text = String(describing: error)
                return text.contains("0002_bad.sql") && text.contains("nonsense_type")
            }
            let rows = try await client.query("SELECT to_regclass('ok') IS NULL", logger: TestDatabase.logger)
            for try await missing in rows.decode(Bool.self) { #expect(missing) }
        }
    }

    @Test("concurrent runs serialise on the advisory lock: each file is applied exactly once")
    func concurrent() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, _ in
            let migrator = try Migrator(directory: TestDatabase.migrationsDirectory)
            let results = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<4 {
                    group.addTask { try await migrator.migrate(client: client, logger: TestDatabase.logger) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { !$0.isEmpty }.count == 1)
            #expect(results.flatMap { $0 } == migrator.migrations.map(\.name))
        }
    }

    @Test("every job version enters its state's indexes only (no index over every row); only waiting jobs enter two")
    func jobIndexes() async throws {
        try await TestDatabase.withFresh { client, _ in
            let rows = try await client.query(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'conveyor_jobs' ORDER BY indexname", logger: TestDatabase.logger)
            var indexes: [String: String] = [:]
            for try await (name, definition) in rows.decode((String, String).self) { indexes[name] = definition }
            #expect(
                Set(indexes.keys) == [
                    "conveyor_jobs_pkey", "conveyor_jobs_claim_idx", "conveyor_jobs_running_idx", "conveyor_jobs_done_seq_idx",
                    "conveyor_jobs_dead_seq_idx", "conveyor_jobs_unique_key_idx",
                    // Waiting jobs by kind, for limited kinds' claims (0016): the one index an
                    // `available` version enters besides the claim index.
                    "conveyor_jobs_kind_claim_idx",
                ])
            for (name, definition) in indexes where name != "conveyor_jobs_pkey" {
                #expect(definition.contains(" WHERE "), "\(name) would take every version of every job: \(definition)")
            }
        }
    }

    @Test(
        "the schema itself refuses queue and kind names outside the envelope's rules, whoever writes the row",
        arguments: [
            ("default", "conveyor.noop", true),
            (String(repeating: "q", count: 64), String(repeating: "k", count: 100), true),
            ("a_b-9", "a_b-9.x", true),
            ("", "conveyor.noop", false),
            (String(repeating: "q", count: 65), "conveyor.noop", false),
            ("Default", "conveyor.noop", false),
            ("de fault", "conveyor.noop", false),
            ("dé", "conveyor.noop", false),
            ("q.x", "conveyor.noop", false),
            ("default", "", false),
            ("default", String(repeating: "k", count: 101), false),
            ("default", "Conveyor.Noop", false),
            ("default", "kind\n", false),
        ])
    func nameChecks(queue: String, kind: String, accepted: Bool) async throws {
        try await TestDatabase.withFresh { client, _ in
            let insert: PostgresQuery = """
                INSERT INTO conveyor_jobs (id, queue, kind, max_attempts, run_at, inserted_at)
                VALUES (gen_random_uuid(), \(queue), \(kind), 1, now(), now())
                """
            if accepted {
                try await client.query(insert, logger: TestDatabase.logger)
            } else {
                await #expect(throws: PSQLError.self) { try await client.query(insert, logger: TestDatabase.logger) }
            }
        }
    }
}
