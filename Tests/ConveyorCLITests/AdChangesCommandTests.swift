import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

/// `conveyor ad-changes`: the audit trail and held budget changes of `meta.ad_change`, from the binary.
@Suite("conveyor ad-changes", .serialized, .timeLimit(.minutes(2)))
struct AdChangesCommandTests {
    @Test("lists held changes and the audit trail (table and JSON); approve makes the held job due now, reject cancels it; a second decision is refused")
    func listApproveReject() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let later = Date().addingTimeInterval(3600)
            let ids = try await store.insert([
                NewJob(kind: "meta.ad_change", runAt: later), NewJob(kind: "meta.ad_change", runAt: later),
            ]).inserted
            for (index, id) in ids.enumerated() {
                _ = try await client.query(
                    """
                    INSERT INTO conveyor_meta_ad_approvals (job_id, ad_account_id, object_type, object_id, field, old_value, new_value, currency, reason, held_at)
                    VALUES (\(id), 'act_1', 'adset', \("12000\(index)"), 'daily_budget', '10000', '30000', 'USD', 'a 200 % change', now())
                    """, logger: TestDatabase.logger
                ).collect()
            }
            _ = try await client.query(
                """
                INSERT INTO conveyor_meta_ad_audit (ad_account_id, object_type, object_id, field, old_value, new_value, job_ids, fbtrace_id, how, requested_at, applied_at)
                VALUES ('act_1', 'adset', '777', 'status', 'ACTIVE', 'PAUSED', ARRAY[\(UUID())]::uuid[], 'AbCdTrace', 'applied', now(), now())
                """, logger: TestDatabase.logger
            ).collect()
            let env = ["DATABASE_URL": url]
            let table = try await ConveyorProcess.run(["ad-changes"], environment: env)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains(ids[0].uuidString) && table.stdout.contains("100.00 USD") && table.stdout.contains("300.00 USD"), "\(table.stdout)")
            #expect(table.stdout.contains("AbCdTrace") && table.stdout.contains("PAUSED"), "\(table.stdout)")
            let json = try await ConveyorProcess.run(["ad-changes", "list", "--json"], environment: env)
            let lines = json.stdout.split(separator: "\n")
            #expect(lines.filter { $0.hasPrefix(#"{"held":"#) }.count == 2 && lines.filter { $0.hasPrefix(#"{"applied":"#) }.count == 1, "\(json.stdout)")

            let approved = try await ConveyorProcess.run(["ad-changes", "approve", ids[0].uuidString, "--by", "alice"], environment: env)
            #expect(approved.status == 0 && approved.stdout.contains("approved"), "\(approved.stderr)")
            #expect(try await store.require(ids[0]).runAt.timeIntervalSinceNow < 60, "due now")
            let rejected = try await ConveyorProcess.run(["ad-changes", "reject", ids[1].uuidString], environment: env)
            #expect(rejected.status == 0, "\(rejected.stderr)")
            #expect(try await store.require(ids[1]).state == .cancelled)
            let again = try await ConveyorProcess.run(["ad-changes", "approve", ids[1].uuidString], environment: env)
            #expect(again.status != 0 && again.stderr.contains("no change of job"), "\(again.stderr)")
            let bad = try await ConveyorProcess.run(["ad-changes", "approve", "nope"], environment: env)
            #expect(bad.status != 0 && bad.stderr.contains("expected a job id"), "\(bad.stderr)")
            let decided = try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_meta_ad_approvals WHERE state = 'approved' AND decided_by = 'alice'")
            #expect(decided == 1)
        }
    }
}
