public import ConveyorPostgres
public import Foundation
import Logging
import PostgresNIO

/// The kind's own tables (migrations/meta_ads_*.sql): the audit trail, approvals and the per-account
/// sending lock. Time is the kind's injected clock, bound into every statement.
public struct AdChangeLedger: Sendable {
    public let store: PostgresJobStore
    var client: PostgresClient { store.client }
    let logger = PostgresJobStore.defaultLogger

    public init(store: PostgresJobStore) {
        self.store = store
    }

    /// The kind's migrations (run with the runtime's by `conveyor migrate`).
    public static var migrations: [Migrator.Migration] { EmbeddedMigrations.all }

    // MARK: - The sending lock

    /// Takes `account`'s sending lock for `holder` until `now + ttl`; false while another chunk holds it.
    func lock(_ account: String, holder: UUID, ttl: Duration, now: Date) async throws -> Bool {
        let until = now.addingTimeInterval(ttl.seconds)
        let query: PostgresQuery = """
            INSERT INTO conveyor_meta_ad_account_locks AS l (ad_account_id, holder, until) VALUES (\(account), \(holder), \(until))
            ON CONFLICT (ad_account_id) DO UPDATE SET holder = excluded.holder, until = excluded.until
            WHERE l.until < \(now) OR l.holder = excluded.holder
            RETURNING holder
            """
        return try await !client.query(query, logger: logger).collect().isEmpty
    }

    func unlock(_ account: String, holder: UUID) async throws {
        _ = try await client.query("DELETE FROM conveyor_meta_ad_account_locks WHERE ad_account_id = \(account) AND holder = \(holder)", logger: logger)
    }

    // MARK: - What was applied

    /// The newest applied (or confirmed) change per object and field: its requested time and job.
    func latestApplied(objects: [String]) async throws -> [String: (requestedAt: Date, job: UUID, value: String)] {
        guard !objects.isEmpty else { return [:] }
        let query: PostgresQuery = """
            SELECT DISTINCT ON (object_id, field) object_id, field, requested_at, job_ids[1], new_value
            FROM conveyor_meta_ad_audit WHERE object_id = ANY(\(objects)) AND NOT dry_run
            ORDER BY object_id, field, requested_at DESC, id DESC
            """
        var result: [String: (Date, UUID, String)] = [:]
        for try await (object, field, requestedAt, job, value) in try await client.query(query, logger: logger).decode((String, String, Date, UUID, String).self) {
            result["\(object)/\(field)"] = (requestedAt, job, value)
        }
        return result
    }

    /// When each object's budget changed within the hour before `now`, oldest first.
    func budgetChanges(objects: [String], now: Date) async throws -> [String: [Date]] {
        guard !objects.isEmpty else { return [:] }
        let since = now.addingTimeInterval(-3600)
        let query: PostgresQuery = """
            SELECT object_id, applied_at FROM conveyor_meta_ad_audit
            WHERE object_id = ANY(\(objects)) AND field IN ('daily_budget', 'lifetime_budget') AND NOT dry_run AND applied_at > \(since)
            ORDER BY applied_at
            """
        var result: [String: [Date]] = [:]
        for try await (object, at) in try await client.query(query, logger: logger).decode((String, Date).self) { result[object, default: []].append(at) }
        return result
    }

    /// One audit row.
    struct Entry: Sendable {
        var change: AdChange
        var oldValue: String?
        var jobs: [UUID]
        var batch: UUID?
        var trace: String?
        var how: String
    }

    func record(_ entries: [Entry], at now: Date) async throws {
        guard !entries.isEmpty else { return }
        // PostgresNIO binds no arrays of optionals or of arrays: "" stands for none, the job ids travel as text.
        let query: PostgresQuery = """
            INSERT INTO conveyor_meta_ad_audit
                (ad_account_id, object_type, object_id, field, old_value, new_value, job_ids, batch_id, fbtrace_id, dry_run, how, requested_at, requested_by, applied_at)
            SELECT a, t, o, f, nullif(ov, ''), nv, string_to_array(j, ',')::uuid[], nullif(b, '')::uuid, nullif(tr, ''), h = 'dry_run', h, r, nullif(by, ''), \(now)
            FROM unnest(\(entries.map(\.change.adAccountID)), \(entries.map(\.change.objectType.rawValue)), \(entries.map(\.change.objectID)),
                        \(entries.map(\.change.field.rawValue)), \(entries.map { $0.oldValue ?? "" }), \(entries.map(\.change.value)),
                        \(entries.map { $0.jobs.map(\.uuidString).joined(separator: ",") }), \(entries.map { $0.batch?.uuidString ?? "" }),
                        \(entries.map { $0.trace ?? "" }), \(entries.map(\.how)), \(entries.map(\.change.requestedAt)), \(entries.map { $0.change.requestedBy ?? "" }))
                AS e(a, t, o, f, ov, nv, j, b, tr, h, r, by)
            """
        _ = try await client.query(query, logger: logger)
    }

    // MARK: - Approvals

    /// The decision on each of `jobs` that was held (pending, approved, rejected).
    func approvals(jobs: [UUID]) async throws -> [UUID: String] {
        guard !jobs.isEmpty else { return [:] }
        var result: [UUID: String] = [:]
        let query: PostgresQuery = "SELECT job_id, state FROM conveyor_meta_ad_approvals WHERE job_id = ANY(\(jobs))"
        for try await (job, state) in try await client.query(query, logger: logger).decode((UUID, String).self) { result[job] = state }
        return result
    }

    /// Holds `change` (job `job`) for approval; a held job stays held.
    func hold(job: UUID, change: AdChange, oldValue: String?, reason: String, now: Date) async throws {
        let query: PostgresQuery = """
            INSERT INTO conveyor_meta_ad_approvals (job_id, ad_account_id, object_type, object_id, field, old_value, new_value, currency, reason, held_at)
            VALUES (\(job), \(change.adAccountID), \(change.objectType.rawValue), \(change.objectID), \(change.field.rawValue), \(oldValue), \(change.value),
                    \(change.currency), \(reason), \(now))
            ON CONFLICT (job_id) DO NOTHING
            """
        _ = try await client.query(query, logger: logger)
    }

    /// A held change.
    public struct Approval: Sendable, Equatable {
        public var job: UUID
        public var adAccountID: String
        public var objectType: String
        public var objectID: String
        public var field: String
        public var oldValue: String?
        public var newValue: String
        public var currency: String?
        public var reason: String
        public var state: String
        public var heldAt: Date
        public var decidedAt: Date?
        public var decidedBy: String?
    }

    /// Held changes, pending first, newest first.
    public func approvals(pendingOnly: Bool = false, limit: Int = 100) async throws -> [Approval] {
        let query: PostgresQuery = """
            SELECT job_id, ad_account_id, object_type, object_id, field, old_value, new_value, currency, reason, state, held_at, decided_at, decided_by
            FROM conveyor_meta_ad_approvals WHERE state = 'pending' OR NOT \(pendingOnly)
            ORDER BY state <> 'pending', held_at DESC LIMIT \(limit)
            """
        var result: [Approval] = []
        let rows = try await client.query(query, logger: logger)
        for try await row in rows {
            let (job, account, type, object, field, old, new, currency, reason, state, held, decided, by) = try row.decode(
                (UUID, String, String, String, String, String?, String, String?, String, String, Date, Date?, String?).self)
            result.append(
                Approval(
                    job: job, adAccountID: account, objectType: type, objectID: object, field: field, oldValue: old, newValue: new, currency: currency, reason: reason,
                    state: state, heldAt: held, decidedAt: decided, decidedBy: by))
        }
        return result
    }

    public enum DecisionResult: Sendable, Equatable {
        case decided
        /// No pending approval for that job.
        case notPending
    }

    /// Approves a held change: its job runs now and sends it.
    public func approve(job: UUID, by: String) async throws -> DecisionResult {
        guard try await decide(job: job, state: "approved", by: by) else { return .notPending }
        _ = try await store.runNow(job)
        return .decided
    }

    /// Rejects a held change: its job ends cancelled with the reason.
    public func reject(job: UUID, by: String) async throws -> DecisionResult {
        guard try await decide(job: job, state: "rejected", by: by) else { return .notPending }
        _ = try await store.discard(.ids([job]), reason: "rejected by \(by): the budget change was over the guardrail", by: by)
        return .decided
    }

    private func decide(job: UUID, state: String, by: String) async throws -> Bool {
        let query: PostgresQuery = """
            UPDATE conveyor_meta_ad_approvals SET state = \(state), decided_at = now(), decided_by = \(by)
            WHERE job_id = \(job) AND state = 'pending' RETURNING job_id
            """
        return try await !client.query(query, logger: logger).collect().isEmpty
    }

    // MARK: - The audit trail

    /// One applied (or dry-run) change.
    public struct AuditEntry: Sendable, Equatable {
        public var adAccountID: String
        public var objectType: String
        public var objectID: String
        public var field: String
        public var oldValue: String?
        public var newValue: String
        public var jobs: [UUID]
        public var batch: UUID?
        public var fbtraceID: String?
        public var how: String
        public var requestedAt: Date
        public var requestedBy: String?
        public var appliedAt: Date
    }

    /// The newest audit rows, optionally of one ad account or object.
    public func audit(account: String? = nil, object: String? = nil, limit: Int = 100) async throws -> [AuditEntry] {
        let query: PostgresQuery = """
            SELECT ad_account_id, object_type, object_id, field, old_value, new_value, array_to_string(job_ids, ','), batch_id, fbtrace_id, how,
                   requested_at, requested_by, applied_at
            FROM conveyor_meta_ad_audit
            WHERE (\(account ?? "")::text = '' OR ad_account_id = \(account ?? "")) AND (\(object ?? "")::text = '' OR object_id = \(object ?? ""))
            ORDER BY applied_at DESC, id DESC LIMIT \(limit)
            """
        var result: [AuditEntry] = []
        let rows = try await client.query(query, logger: logger)
        for try await row in rows {
            let (account, type, object, field, old, new, jobs, batch, trace, how, requested, by, applied) = try row.decode(
                (String, String, String, String, String?, String, String, UUID?, String?, String, Date, String?, Date).self)
            result.append(
                AuditEntry(
                    adAccountID: account, objectType: type, objectID: object, field: field, oldValue: old, newValue: new,
                    jobs: jobs.split(separator: ",").compactMap { UUID(uuidString: String($0)) }, batch: batch, fbtraceID: trace, how: how,
                    requestedAt: requested, requestedBy: by, appliedAt: applied))
        }
        return result
    }
}
