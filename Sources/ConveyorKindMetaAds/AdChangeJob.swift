public import ConveyorCore
public import ConveyorHTTPClient
import ConveyorMeta
public import ConveyorPostgres
public import Foundation
import Logging
import Synchronization

/// `meta.ad_change`: edits of Meta ads, ad sets and campaigns (status, budgets, bid, name), many per
/// Graph batch call (api-notes §C). Args: ``AdChange``. Producers set the job's limit key to
/// ``AdChange/limitKey(_:)`` (`meta-ad-account:act_…`) so a throttled account holds every worker off.
///
/// A chunk is handled per ad account, under that account's sending lock (one chunk at a time across
/// the cluster, so two never race on one object):
/// 1. invalid args are dead at once with the reason;
/// 2. per object and field the latest `requested_at` wins, in the chunk (``AdChangePlan/coalesce(_:)``)
///    and against what was applied before (the audit table): superseded jobs complete naming the job
///    that superseded them;
/// 3. the objects' current values are read (`GET ?ids=…`, up to 50 per call) for the guardrails, the
///    audit and to skip changes already in place;
/// 4. guardrails: the currency must be the account's; a daily budget under the minimum is dead; a
///    budget change over the allowed share waits for approval; a fifth budget change of an ad set in
///    an hour waits for the next allowed minute; dry-run mode records instead of sending;
/// 5. the rest goes out in batches of ≤ 50 with no two ad sets of one campaign (``AdChangePlan/batches(_:limit:)``);
/// 6. each item's answer resolves its jobs: success → completed with the applied value (and audited);
///    a throttling error pauses the account's key until Meta's estimate (no attempt spent) and stops
///    sending for the account; a permanent error is dead with Meta's message; a transient one retries;
///    `null` (the batch timed out) → the object is read again, and the change completes without a
///    write when it is in place, else it retries.
public struct AdChangeJob: ChunkHandler {
    public typealias Args = JSONValue

    public static let kind = "meta.ad_change"

    public let settings: AdChangeSettings
    let ledger: AdChangeLedger?
    let upstream: Upstream
    let clock: any ConveyorClock
    let currencies = CurrencyCache()

    /// `store` holds the kind's tables; without one (commands that only need the kind to exist) every
    /// job fails, retried, naming it.
    public init(settings: AdChangeSettings, store: PostgresJobStore?, clock: any ConveyorClock = SystemClock(), upstream: Upstream? = nil) {
        self.settings = settings
        self.ledger = store.map(AdChangeLedger.init(store:))
        self.clock = clock
        self.upstream =
            upstream ?? Upstream(settings.meta.upstream(name: "meta-ads", timeout: settings.timeout), clock: clock, logger: Logger(label: "conveyor.meta"))
    }

    public var options: JobKindOptions { JobKindOptions(timeout: .seconds(300), retry: settings.retry) }

    public var chunk: ChunkOptions { ChunkOptions(size: settings.chunkSize, linger: settings.linger) }

    public func run(_ jobs: [ChunkItem<JSONValue>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        var results: [UUID: ChunkResult] = [:]
        var byAccount: [String: [AdChangePlan.Pending]] = [:]
        for (position, job) in jobs.enumerated() {
            switch AdChange.parse(job.args) {
            case .failure(let invalid): results[job.id] = .permanent("invalid meta.ad_change args: \(invalid.reason)")
            case .success(let change): byAccount[change.adAccountID, default: []].append(.init(job: job.id, change: change, position: position))
            }
        }
        guard let ledger else {
            for items in byAccount.values { for item in items { results[item.job] = .failed("meta.ad_change needs the database: this process has none") } }
            return results
        }
        guard let authentication = settings.meta.authentication() else {
            for items in byAccount.values { for item in items { results[item.job] = .failed("META_ACCESS_TOKEN is not set") } }
            return results
        }
        for (account, pending) in byAccount.sorted(by: { $0.key < $1.key }) {
            let holder = UUID()
            guard try await ledger.lock(account, holder: holder, ttl: options.timeout, now: clock.now()) else {
                // Another chunk is sending this account's changes: after it, these see what it applied.
                for item in pending { results[item.job] = .outcome(.snooze(.seconds(2))) }
                continue
            }
            do {
                var run = AccountRun(
                    job: self, ledger: ledger, account: account, authentication: authentication, logger: context.logger, guardrails: settings.guardrails(for: account))
                try await run.handle(pending)
                results.merge(run.results) { _, new in new }
            } catch {
                try? await ledger.unlock(account, holder: holder)
                throw error
            }
            try await ledger.unlock(account, holder: holder)
        }
        return results
    }
}

/// The ad accounts' currencies, read once per process (an account's currency never changes).
final class CurrencyCache: Sendable {
    private let known = Mutex<[String: String]>([:])
    func get(_ account: String) -> String? { known.withLock { $0[account] } }
    func set(_ account: String, _ currency: String) { known.withLock { $0[account] = currency } }
}

/// One ad account's part of a chunk.
struct AccountRun {
    let job: AdChangeJob
    let ledger: AdChangeLedger
    let account: String
    let authentication: [(String, String)]
    let logger: Logger
    let guardrails: Guardrails
    var results: [UUID: ChunkResult] = [:]
    var audit: [AdChangeLedger.Entry] = []

    var version: String { job.settings.meta.apiVersion }
    var now: Date { job.clock.now() }

    init(job: AdChangeJob, ledger: AdChangeLedger, account: String, authentication: [(String, String)], logger: Logger, guardrails: Guardrails) {
        self.job = job
        self.ledger = ledger
        self.account = account
        self.authentication = authentication
        self.logger = logger
        self.guardrails = guardrails
    }

    /// Why the account's calls stopped: every change not yet resolved gets this.
    enum Stop: Error {
        case throttled(until: Date, String)
        case transient(String)
        case permanent(String)
        case circuitOpen(until: Date)
    }

    mutating func handle(_ pending: [AdChangePlan.Pending]) async throws {
        var (winners, superseded) = AdChangePlan.coalesce(pending)
        for (loser, winner) in superseded { results[loser] = Self.result(["superseded_by": .string(winner.uuidString)]) }
        // Against what earlier chunks applied: an older request than the applied one loses to it.
        let applied = try await ledger.latestApplied(objects: Array(Set(winners.map(\.change.objectID))))
        winners = winners.filter { item in
            guard let last = applied[item.key] else { return true }
            if last.job == item.job {
                results[item.job] = Self.result(["applied": .bool(true), "value": .string(item.change.value), "note": .string("applied by an earlier attempt")])
                return false
            }
            if last.requestedAt >= item.change.requestedAt {
                results[item.job] = Self.result([
                    "superseded_by": .string(last.job.uuidString), "note": .string("a change requested later was applied already"),
                ])
                return false
            }
            return true
        }
        guard !winners.isEmpty else { return }
        let approvals = try await ledger.approvals(jobs: winners.map(\.job))
        let budgetTimes = try await ledger.budgetChanges(objects: winners.filter { $0.change.field.isBudget }.map(\.change.objectID), now: now)
        do {
            let currency = try await accountCurrency()
            let current = try await read(winners.map(\.change))
            var ready: [AdChangePlan.Pending] = []
            var budgetCount = budgetTimes.mapValues(\.count)
            for item in winners {
                if let outcome = try await guardrail(item, currency: currency, current: current[item.change.objectID], approval: approvals[item.job], budgetTimes: budgetTimes[item.change.objectID] ?? [], counted: &budgetCount) {
                    results[item.job] = outcome
                } else {
                    ready.append(item)
                }
            }
            if guardrails.dryRun {
                for item in ready {
                    let operation = AdChangePlan.operations([item])[0].operation(version: version)
                    audit.append(.init(change: item.change, oldValue: current[item.change.objectID]?[item.change.field.rawValue], jobs: [item.job], batch: nil, trace: nil, how: "dry_run"))
                    results[item.job] = Self.result([
                        "dry_run": .bool(true),
                        "would_send": .object(["method": .string("POST"), "relative_url": .string(operation.relativeURL), "body": .string(GraphBatch.formEncode(operation.body))]),
                    ])
                }
            } else {
                try await send(ready, current: current, superseded: superseded)
            }
        } catch let stop as Stop {
            for item in winners where results[item.job] == nil {
                switch stop {
                case .throttled(let until, let message): results[item.job] = .throttled(key: AdChange.limitKey(account), until: until, message)
                case .transient(let message): results[item.job] = .failed(message)
                case .permanent(let message): results[item.job] = .permanent(message)
                case .circuitOpen(let until): results[item.job] = .outcome(.snooze(.milliseconds(Int64(max(until.timeIntervalSince(now), 0.1) * 1000))))
                }
            }
        }
        try await ledger.record(audit, at: now)
    }

    /// Nil when the change may go out; else what becomes of its job.
    func guardrail(
        _ item: AdChangePlan.Pending, currency: String, current: [String: String]?, approval: String?, budgetTimes: [Date], counted: inout [String: Int]
    ) async throws -> ChunkResult? {
        let change = item.change
        if approval == "rejected" { return .outcome(.cancel(reason: "the budget change was rejected for being over the guardrail")) }
        if current == nil { return .permanent("Meta has no \(change.objectType.rawValue) \(change.objectID) in \(account) (or the token cannot see it)") }
        if change.field.isMoney, let minor = Int64(change.value), let given = change.currency {
            if given != currency {
                return .permanent("\(change.field.rawValue) is in \(given) but \(account) is billed in \(currency): amounts are in the account's currency")
            }
            if change.field == .dailyBudget, let minimum = guardrails.minDailyBudget[currency], let major = change.majorAmount, major < minimum {
                return .permanent("daily_budget \(Money.describe(minor: minor, currency: currency)) is under the minimum of \(minimum) \(currency) for \(account)")
            }
        }
        if current?[change.field.rawValue] == change.value {
            return Self.result(["unchanged": .bool(true), "value": .string(change.value), "note": .string("already the current value: nothing sent")])
        }
        guard change.field.isBudget, let minor = Int64(change.value) else { return nil }
        if let old = current?[change.field.rawValue].flatMap(Int64.init), old > 0, approval != "approved" {
            let share = Double(abs(minor - old)) / Double(old)
            if share > guardrails.maxBudgetChange {
                let reason =
                    "\(change.field.rawValue) \(Money.describe(minor: old, currency: currency)) → \(Money.describe(minor: minor, currency: currency)) is a \(Int((share * 100).rounded())) % change; over \(Int((guardrails.maxBudgetChange * 100).rounded())) % needs approval (conveyor ad-changes approve \(item.job.uuidString))"
                try await ledger.hold(job: item.job, change: change, oldValue: String(old), reason: reason, now: now)
                logger.notice("budget change held for approval", metadata: ["job_id": "\(item.job)", "object_id": "\(change.objectID)", "reason": "\(reason)"])
                // Approval (or rejection) wakes it at once; until then it looks again every hour.
                return .outcome(.snooze(.seconds(3600)))
            }
        }
        // Meta blocks an ad set's budget for an hour after its fourth change in an hour (§C.5).
        if change.objectType == .adset {
            let count = counted[change.objectID] ?? 0
            if count >= guardrails.budgetChangesPerHour {
                let times = budgetTimes.sorted()
                let freeing = times.count >= guardrails.budgetChangesPerHour ? times[times.count - guardrails.budgetChangesPerHour] : now
                let allowed = Self.nextMinute(after: freeing.addingTimeInterval(3600))
                let wait = max(allowed.timeIntervalSince(now), 1)
                logger.info("budget change deferred: four in the last hour", metadata: ["job_id": "\(item.job)", "object_id": "\(change.objectID)", "until": "\(RFC3339.format(allowed))"])
                return .outcome(.snooze(.milliseconds(Int64(wait * 1000))))
            }
            counted[change.objectID] = count + 1
        }
        return nil
    }

    /// The first whole minute at or after `date`.
    static func nextMinute(after date: Date) -> Date {
        let seconds = date.timeIntervalSince1970
        return Date(timeIntervalSince1970: (seconds / 60).rounded(.up) * 60)
    }

    // MARK: - Calls

    /// The account's currency (`GET act_…?fields=currency`), once per process.
    func accountCurrency() async throws -> String {
        if let known = job.currencies.get(account) { return known }
        let response = try await call(UpstreamRequest(path: "/\(version)/\(account)", query: authentication + [("fields", "currency")]), what: "GET \(account)")
        guard case .object(let fields)? = try? JSONParser.parse(String(decoding: response.body, as: UTF8.self)), case .string(let currency)? = fields["currency"] else {
            throw Stop.transient("GET \(account): HTTP \(response.status) but no currency in \(GraphRedaction.redact(response.excerpt))")
        }
        job.currencies.set(account, currency)
        return currency
    }

    /// The objects' current values (field → value as Meta sends them in writes), by id; an object
    /// Meta does not know is absent.
    func read(_ changes: [AdChange]) async throws -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        let byType = Dictionary(grouping: changes, by: \.objectType)
        for type in AdChange.ObjectType.allCases {
            let ids = Array(Set((byType[type] ?? []).map(\.objectID))).sorted()
            let fields: String =
                switch type {
                case .ad: "status,name"
                case .adset: "status,name,daily_budget,lifetime_budget,bid_amount,campaign_id"
                case .campaign: "status,name,daily_budget,lifetime_budget"
                }
            for start in stride(from: 0, to: ids.count, by: GraphBatch.maxOperations) {
                let slice = Array(ids[start..<min(start + GraphBatch.maxOperations, ids.count)])
                let request = UpstreamRequest(path: "/\(version)/", query: authentication + [("ids", slice.joined(separator: ",")), ("fields", fields)])
                let response = try await call(request, what: "GET ?ids= (\(slice.count) \(type.rawValue)s)", allowError: true)
                if (200..<300).contains(response.status) {
                    guard case .object(let objects)? = try? JSONParser.parse(String(decoding: response.body, as: UTF8.self)) else {
                        throw Stop.transient("GET ?ids=: HTTP \(response.status) but not a JSON object: \(GraphRedaction.redact(response.excerpt))")
                    }
                    for (id, object) in objects { result[id] = Self.values(object) }
                } else if GraphError(body: response.body)?.code == 100 {
                    // One unknown id fails the whole multi-id read (#803): read those objects one by one.
                    for id in slice {
                        let single = try await call(UpstreamRequest(path: "/\(version)/\(id)", query: authentication + [("fields", fields)]), what: "GET \(id)", allowError: true)
                        if (200..<300).contains(single.status), let object = try? JSONParser.parse(String(decoding: single.body, as: UTF8.self)) {
                            result[id] = Self.values(object)
                        } else if GraphError(body: single.body)?.classification != .permanent {
                            try Self.stop(for: single, what: "GET \(id)", clock: job.clock, settings: job.settings)
                        }
                    }
                } else {
                    try Self.stop(for: response, what: "GET ?ids=", clock: job.clock, settings: job.settings)
                }
            }
        }
        return result
    }

    static func values(_ object: JSONValue) -> [String: String] {
        guard case .object(let fields) = object else { return [:] }
        var values: [String: String] = [:]
        for (key, value) in fields {
            switch value {
            case .string(let text): values[key] = text
            case .integer(let number): values[key] = String(number)
            case .number(let number): values[key] = String(Int64(number))
            default: break
            }
        }
        return values
    }

    /// Sends the ready changes in batches and resolves them from the answers.
    mutating func send(_ ready: [AdChangePlan.Pending], current: [String: [String: String]], superseded: [(job: UUID, by: UUID)]) async throws {
        let coalescedInto = Dictionary(grouping: superseded, by: \.by).mapValues { $0.map(\.job) }
        var unknown: [AdChangePlan.ObjectOperation] = []
        for batch in AdChangePlan.batches(AdChangePlan.operations(ready)) {
            let batchID = UUID()
            let operations = batch.map { $0.operation(version: version) }
            let response = try await call(
                GraphBatch.request(operations, version: version, authentication: authentication), what: "POST batch (\(operations.count) operations)")
            guard let items = GraphBatch.results(response, count: operations.count) else {
                throw Stop.transient("POST batch: HTTP \(response.status) but not \(operations.count) results: \(GraphRedaction.redact(response.excerpt))")
            }
            let trace = response.header("x-fb-trace-id")
            var throttle: (Date, String)?
            for (operation, item) in zip(batch, items) {
                switch item {
                case .success:
                    for (field, pending) in operation.fields {
                        audit.append(.init(change: pending.change, oldValue: current[operation.objectID]?[field.rawValue], jobs: [pending.job] + (coalescedInto[pending.job] ?? []), batch: batchID, trace: trace, how: "applied"))
                        results[pending.job] = Self.result(["applied": .bool(true), "value": .string(pending.change.value), "batch_id": .string(batchID.uuidString), "fbtrace_id": trace.map(JSONValue.string) ?? .null])
                    }
                case .unknown:
                    unknown.append(operation)
                case .failure(let status, let error, let excerpt):
                    let message = "Meta refused \(operation.objectType.rawValue) \(operation.objectID): HTTP \(status), \(error.map(\.description) ?? excerpt)"
                    for pending in operation.fields.values {
                        switch error?.classification ?? (status >= 500 ? .transient : .permanent) {
                        case .throttled:
                            let until = now.addingTimeInterval((GraphUsage.regainAccess(headers: response.headers) ?? job.settings.defaultThrottle).seconds)
                            throttle = (until, message)
                            results[pending.job] = .throttled(key: AdChange.limitKey(account), until: until, message)
                        case .transient: results[pending.job] = .failed(message)
                        case .permanent: results[pending.job] = .permanent(message)
                        }
                    }
                }
            }
            if let (until, message) = throttle { throw Stop.throttled(until: until, message) }
        }
        guard !unknown.isEmpty else { return }
        // The batch timed out before these: read them again; what is in place completes without a write.
        let again = try await read(unknown.flatMap { $0.fields.values.map(\.change) })
        for operation in unknown {
            for (field, pending) in operation.fields {
                if again[operation.objectID]?[field.rawValue] == pending.change.value {
                    audit.append(.init(change: pending.change, oldValue: current[operation.objectID]?[field.rawValue], jobs: [pending.job] + (coalescedInto[pending.job] ?? []), batch: nil, trace: nil, how: "confirmed"))
                    results[pending.job] = Self.result(["applied": .bool(true), "value": .string(pending.change.value), "note": .string("the batch timed out; Meta had applied it")])
                } else {
                    results[pending.job] = .failed("the batch timed out before this change (Meta answered null) and it is not in place: sending it again")
                }
            }
        }
    }

    /// One call; a failure that stops the account's calls is thrown as a ``Stop``.
    func call(_ request: UpstreamRequest, what: String, allowError: Bool = false) async throws -> UpstreamResponse {
        let response: UpstreamResponse
        do {
            response = try await job.upstream.send(request)
        } catch .circuitOpen(_, let until) {
            throw Stop.circuitOpen(until: until)
        } catch {
            throw Stop.transient(GraphRedaction.redact(error.description))
        }
        if (200..<300).contains(response.status) || allowError { return response }
        try Self.stop(for: response, what: what, clock: job.clock, settings: job.settings)
        return response
    }

    static func stop(for response: UpstreamResponse, what: String, clock: any ConveyorClock, settings: AdChangeSettings) throws {
        let failure = GraphFailure.classify(response, what: what)
        switch failure.classification {
        case .throttled: throw Stop.throttled(until: clock.now().addingTimeInterval((failure.retryAfter ?? settings.defaultThrottle).seconds), failure.message)
        case .transient: throw Stop.transient(failure.message)
        case .permanent: throw Stop.permanent(failure.message)
        }
    }

    static func result(_ fields: [String: JSONValue]) -> ChunkResult {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(JSONValue.object(fields))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return .outcome(.completedWithResult(json: json))
    }
}
