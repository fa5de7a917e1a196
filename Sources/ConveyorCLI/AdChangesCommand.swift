import ArgumentParser
import ConveyorCore
import ConveyorKindMetaAds
import ConveyorPostgres
import ConveyorWeb
import Foundation
import Logging

/// `conveyor ad-changes [list]|approve|reject`: `meta.ad_change`'s audit trail and held budget changes.
struct AdChangesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ad-changes",
        abstract: "Meta ad changes: what was applied (the audit trail), what waits for approval; approve or reject a held change.",
        subcommands: [List.self, Approve.self, Reject.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Held changes waiting for approval, then the newest applied changes (the default).")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "Only this ad account (act_…).") var account: String?
        @Option(help: "Only this ad, ad set or campaign id.") var object: String?
        @Option(help: "How many audit rows, newest first.") var limit = 50
        @Flag(help: #"Print JSON lines: {"held": …} per held change, then {"applied": …} per audit row."#) var json = false

        func run() async throws {
            let (held, audit) = try await database.withClient(logger: Logger(label: "conveyor.ad-changes")) { client in
                let ledger = AdChangeLedger(store: PostgresJobStore(client: client))
                return (try await ledger.approvals(pendingOnly: true), try await ledger.audit(account: account, object: object, limit: max(1, min(limit, 10_000))))
            }
            if json {
                for approval in held { print(#"{"held":\#(Self.json(approval))}"#) }
                for entry in audit { print(#"{"applied":\#(Self.json(entry))}"#) }
                return
            }
            if held.isEmpty {
                print("no changes waiting for approval")
            } else {
                var table = [["HELD JOB", "ACCOUNT", "OBJECT", "FIELD", "FROM", "TO", "HELD AT", "WHY"]]
                for approval in held {
                    table.append([
                        approval.job.uuidString, TerminalText.escape(approval.adAccountID), "\(approval.objectType) \(TerminalText.escape(approval.objectID))",
                        approval.field, Self.money(approval.oldValue, approval.currency), Self.money(approval.newValue, approval.currency),
                        RFC3339.format(approval.heldAt), TerminalText.escape(String(approval.reason.prefix(100))),
                    ])
                }
                print(TextTable.render(table))
            }
            if audit.isEmpty {
                print("no applied changes")
            } else {
                var table = [["APPLIED AT", "ACCOUNT", "OBJECT", "FIELD", "OLD", "NEW", "HOW", "JOBS", "FBTRACE_ID"]]
                for entry in audit {
                    table.append([
                        RFC3339.format(entry.appliedAt), TerminalText.escape(entry.adAccountID), "\(entry.objectType) \(TerminalText.escape(entry.objectID))",
                        entry.field, TerminalText.escape(String((entry.oldValue ?? "–").prefix(40))), TerminalText.escape(String(entry.newValue.prefix(40))),
                        entry.how, entry.jobs.count == 1 ? entry.jobs[0].uuidString : "\(entry.jobs[0].uuidString) +\(entry.jobs.count - 1)",
                        TerminalText.escape(entry.fbtraceID ?? "–"),
                    ])
                }
                print(TextTable.render(table))
            }
        }

        static func money(_ minor: String?, _ currency: String?) -> String {
            guard let minor, let value = Int64(minor), let currency else { return minor ?? "–" }
            return Money.describe(minor: value, currency: currency)
        }

        static func json(_ approval: AdChangeLedger.Approval) -> String {
            var object: [String: JSONValue] = [
                "job_id": .string(approval.job.uuidString), "ad_account_id": .string(approval.adAccountID), "object_type": .string(approval.objectType),
                "object_id": .string(approval.objectID), "field": .string(approval.field), "new_value": .string(approval.newValue),
                "reason": .string(approval.reason), "state": .string(approval.state), "held_at": .string(RFC3339.format(approval.heldAt)),
            ]
            if let old = approval.oldValue { object["old_value"] = .string(old) }
            if let currency = approval.currency { object["currency"] = .string(currency) }
            return encode(object)
        }

        static func json(_ entry: AdChangeLedger.AuditEntry) -> String {
            var object: [String: JSONValue] = [
                "ad_account_id": .string(entry.adAccountID), "object_type": .string(entry.objectType), "object_id": .string(entry.objectID),
                "field": .string(entry.field), "new_value": .string(entry.newValue), "job_ids": .array(entry.jobs.map { .string($0.uuidString) }),
                "how": .string(entry.how), "requested_at": .string(RFC3339.format(entry.requestedAt)), "applied_at": .string(RFC3339.format(entry.appliedAt)),
            ]
            if let old = entry.oldValue { object["old_value"] = .string(old) }
            if let batch = entry.batch { object["batch_id"] = .string(batch.uuidString) }
            if let trace = entry.fbtraceID { object["fbtrace_id"] = .string(trace) }
            if let by = entry.requestedBy { object["requested_by"] = .string(by) }
            return encode(object)
        }

        static func encode(_ object: [String: JSONValue]) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(JSONValue.object(object))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a held budget change: its job runs now and sends it.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The held job's id.") var job: String
        @Option(help: "Who approves, recorded (default: $USER@HOST).") var by: String?

        func run() async throws {
            guard let id = UUID(uuidString: job) else { throw CommandError.configuration(setting: "JOB", reason: "expected a job id (a UUID), got \(job)") }
            let who = by ?? Settings.operatorName()
            let result = try await database.withClient(logger: Logger(label: "conveyor.ad-changes")) { client in
                try await AdChangeLedger(store: PostgresJobStore(client: client)).approve(job: id, by: who)
            }
            guard result == .decided else { throw CommandError.failed("no change of job \(id) is waiting for approval") }
            print("approved \(id): it runs now")
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject a held budget change: its job ends cancelled.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The held job's id.") var job: String
        @Option(help: "Who rejects, recorded (default: $USER@HOST).") var by: String?

        func run() async throws {
            guard let id = UUID(uuidString: job) else { throw CommandError.configuration(setting: "JOB", reason: "expected a job id (a UUID), got \(job)") }
            let who = by ?? Settings.operatorName()
            let result = try await database.withClient(logger: Logger(label: "conveyor.ad-changes")) { client in
                try await AdChangeLedger(store: PostgresJobStore(client: client)).reject(job: id, by: who)
            }
            guard result == .decided else { throw CommandError.failed("no change of job \(id) is waiting for approval") }
            print("rejected \(id): cancelled")
        }
    }
}

/// `meta.ad_change` on the dashboard (`/panels/ad-changes`): held budget changes with Approve and
/// Reject, then the audit trail.
struct AdChangesPanel: DashboardPanel {
    let ledger: AdChangeLedger

    var slug: String { "ad-changes" }
    var title: String { "Ad changes" }

    func content() async throws -> DashboardPanelContent {
        let held = try await ledger.approvals(pendingOnly: true)
        let audit = try await ledger.audit(limit: 200)
        let money = AdChangesCommand.List.money
        return DashboardPanelContent(sections: [
            .init(
                title: "Waiting for approval", header: ["Job", "Account", "Object", "Field", "From", "To", "Held at", "Why"],
                rows: held.map { approval in
                    .init(
                        id: approval.job.uuidString,
                        cells: [
                            approval.job.uuidString, approval.adAccountID, "\(approval.objectType) \(approval.objectID)", approval.field,
                            money(approval.oldValue, approval.currency), money(approval.newValue, approval.currency), RFC3339.format(approval.heldAt), approval.reason,
                        ],
                        actions: [.init(label: "Approve", action: "approve"), .init(label: "Reject", action: "reject", danger: true)], job: approval.job)
                }, empty: "No change waits for approval."),
            .init(
                title: "Applied (newest first)", header: ["Job", "Applied at", "Account", "Object", "Field", "Old", "New", "How", "Batch", "fbtrace_id"],
                rows: audit.map { entry in
                    .init(
                        id: entry.jobs.first?.uuidString ?? "",
                        cells: [
                            entry.jobs.first?.uuidString ?? "–", RFC3339.format(entry.appliedAt), entry.adAccountID, "\(entry.objectType) \(entry.objectID)", entry.field,
                            entry.oldValue ?? "–", entry.newValue, entry.jobs.count > 1 ? "\(entry.how) (+\(entry.jobs.count - 1) coalesced)" : entry.how,
                            entry.batch?.uuidString.prefix(8).description ?? "–", entry.fbtraceID ?? "–",
                        ], job: entry.jobs.first)
                }, empty: "No change applied yet."),
        ])
    }

    func perform(action: String, id: String, by: String) async throws -> String {
        guard let job = UUID(uuidString: id) else { return "not a job id" }
        switch action {
        case "approve": return try await ledger.approve(job: job, by: by) == .decided ? "approved: it runs now" : "nothing waits for approval under that job"
        case "reject": return try await ledger.reject(job: job, by: by) == .decided ? "rejected: the job is cancelled" : "nothing waits for approval under that job"
        default: return "unknown action \(action)"
        }
    }
}
