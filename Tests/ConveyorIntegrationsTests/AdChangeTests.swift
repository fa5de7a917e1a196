import ConveyorCore
import ConveyorHTTPClient
import ConveyorKindMetaAds
import ConveyorMeta
import ConveyorPostgres
import ConveyorSandbox
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import Logging
import PostgresNIO
import Testing

/// `meta.ad_change` against the sandbox's Marketing API: real PostgreSQL, real HTTP on loopback.
@Suite("Batched ad changes through the sandbox", .serialized, .timeLimit(.minutes(3)))
struct AdChangeTests {
    static let token = WebhookToCAPITests.metaToken

    static func settings(base: String, guardrails: Guardrails = Guardrails(), accounts: [String: Guardrails] = [:]) -> AdChangeSettings {
        AdChangeSettings(
            meta: MetaSettings(graphBaseURL: base, accessToken: token, appSecret: "app-secret"), defaults: guardrails, accounts: accounts,
            linger: .milliseconds(500), retry: RetryPolicy(maxAttempts: 5, backoff: { _, _ in .milliseconds(50) }))
    }

    static func worker(_ store: PostgresJobStore, _ job: AdChangeJob, logger: Logger = TestDatabase.logger) -> Worker {
        var registry = HandlerRegistry()
        registry.register(chunk: job)
        return Worker(
            configuration: Worker.Configuration(
                queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 1000)]), pollInterval: .milliseconds(50), gracePeriod: .seconds(5),
                completionLinger: .milliseconds(2)),
            store: store, registry: registry, logger: logger)
    }

    /// `campaigns` campaigns of `perCampaign` ad sets each in `account`, every ad set ACTIVE at 100.00 a day.
    static func seed(_ sandbox: Sandbox, account: String = "act_1", currency: String = "USD", campaigns: Int, perCampaign: Int, budget: String = "10000") async -> [(adset: String, campaign: String)] {
        await sandbox.state.seedAccount(account, currency: currency)
        var adsets: [(String, String)] = []
        for c in 0..<campaigns {
            let campaign = "9\(account.dropFirst(4))\(String(format: "%03d", c))"
            await sandbox.state.seedAdObject(.init(id: campaign, type: "campaign", account: account, fields: ["status": "ACTIVE", "name": "campaign \(c)"]))
            for a in 0..<perCampaign {
                let adset = "\(campaign)\(String(format: "%03d", a))"
                await sandbox.state.seedAdObject(
                    .init(id: adset, type: "adset", account: account, campaignID: campaign, fields: ["status": "ACTIVE", "name": "adset \(a)", "daily_budget": budget]))
                adsets.append((adset, campaign))
            }
        }
        return adsets
    }

    static func change(_ adset: (adset: String, campaign: String), _ change: String, at: Date, account: String = "act_1", by: String = "test") -> NewJob {
        NewJob(
            kind: AdChangeJob.kind,
            args: #"{"ad_account_id":"\#(account)","object_type":"adset","object_id":"\#(adset.adset)","campaign_id":"\#(adset.campaign)","change":\#(change),"requested_at":"\#(RFC3339.formatPrecise(at))","requested_by":"\#(by)"}"#,
            limitKey: AdChange.limitKey(account))
    }

    static func migrate(_ client: PostgresClient) async throws {
        try await Migrator(migrations: Migrator.embedded.migrations + AdChangeLedger.migrations).migrate(client: client, logger: TestDatabase.logger)
    }

    @Test("the kind's embedded migrations are exactly its migrations/*.sql (run ops/embed-migrations after adding one)")
    func embeddedMigrations() throws {
        let folder = TestDatabase.repositoryRoot.appendingPathComponent("Sources/ConveyorKindMetaAds/migrations")
        let files = try Migrator(directory: folder).migrations
        #expect(AdChangeLedger.migrations == files)
    }

    @Test("coalescing keeps the latest request per object and field; batches hold at most 50 and never two ad sets of one campaign")
    func planRules() throws {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        var pending: [AdChangePlan.Pending] = []
        var latest: [String: (Date, UUID)] = [:]
        var generator = SystemRandomNumberGenerator()
        for index in 0..<600 {
            let adset = index % 60
            let at = base.addingTimeInterval(Double(Int.random(in: 0..<10_000, using: &generator)))
            let args = #"{"ad_account_id":"act_1","object_type":"adset","object_id":"\#(1000 + adset)","campaign_id":"\#(adset % 6)","change":{"status":"\#(index % 2 == 0 ? "ACTIVE" : "PAUSED")"},"requested_at":"\#(RFC3339.formatPrecise(at))"}"#
            let change = try AdChange.parse(JSONParser.parse(args)).get()
            let item = AdChangePlan.Pending(job: UUID(), change: change, position: index)
            pending.append(item)
            if let current = latest["\(1000 + adset)"], (current.0, 0) >= (at, 1) { continue }
            latest["\(1000 + adset)"] = (at, item.job)
        }
        let (winners, superseded) = AdChangePlan.coalesce(pending)
        #expect(winners.count == 60 && superseded.count == 540)
        for winner in winners { #expect(latest[winner.change.objectID]?.1 == winner.job) }
        let winnerIDs = Set(winners.map(\.job))
        #expect(superseded.allSatisfy { winnerIDs.contains($0.by) }, "every superseded job names the final winner")
        let batches = AdChangePlan.batches(AdChangePlan.operations(winners))
        #expect(batches.count == 10, "60 ad sets in 6 campaigns: 10 per campaign, so 10 batches")
        for batch in batches {
            #expect(batch.count <= 50)
            let campaigns = batch.compactMap(\.campaignID)
            #expect(Set(campaigns).count == campaigns.count, "two ad sets of one campaign in a batch")
        }
    }

    @Test("JPY and USD amounts reach the API in minor units by Meta's offsets; invalid args are dead at once with the reason")
    func moneyAndValidation() throws {
        func parse(_ change: String) -> Result<AdChange, AdChange.Invalid> {
            AdChange.parse(try! JSONParser.parse(#"{"ad_account_id":"act_1","object_type":"adset","object_id":"1","campaign_id":"2","change":\#(change),"requested_at":"2026-12-02T09:30:00Z"}"#))
        }
        #expect(try parse(#"{"daily_budget":{"amount":25.5,"currency":"USD"}}"#).get().value == "2550")
        #expect(try parse(#"{"daily_budget":{"amount":"20.07","currency":"USD"}}"#).get().value == "2007")
        #expect(try parse(#"{"daily_budget":{"amount":1500,"currency":"JPY"}}"#).get().value == "1500")
        #expect(try parse(#"{"lifetime_budget":{"amount":50000,"currency":"KRW"}}"#).get().value == "50000")
        #expect(Money.describe(minor: 2550, currency: "USD") == "25.50 USD" && Money.describe(minor: 1500, currency: "JPY") == "1500 JPY")
        for (change, reason) in [
            (#"{"daily_budget":{"amount":12.345,"currency":"USD"}}"#, "smallest unit"),
            (#"{"daily_budget":{"amount":1500.5,"currency":"JPY"}}"#, "smallest unit"),
            (#"{"daily_budget":{"amount":-3,"currency":"USD"}}"#, "positive"),
            (#"{"status":"DELETED"}"#, "ACTIVE or PAUSED"),
            (#"{"status":"ACTIVE","name":"x"}"#, "exactly one"),
            (#"{"colour":"red"}"#, "not a field"),
        ] {
            guard case .failure(let invalid) = parse(change) else { Issue.record("\(change) was accepted"); continue }
            #expect(invalid.reason.contains(reason), "\(change): \(invalid.reason)")
        }
        guard case .failure(let noCampaign) = AdChange.parse(try JSONParser.parse(#"{"ad_account_id":"act_1","object_type":"adset","object_id":"1","change":{"status":"PAUSED"},"requested_at":"2026-12-02T09:30:00Z"}"#)) else {
            Issue.record("an ad set without its campaign was accepted")
            return
        }
        #expect(noCampaign.reason.contains("campaign_id is required"))
    }

    @Test("500 pending changes over 40 ad sets in 8 campaigns reach the sandbox in at most 12 HTTP calls; each object ends with its latest requested value; the ad-set rule holds; every change is audited")
    func fiveHundredChanges() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let adsets = await Self.seed(sandbox, campaigns: 8, perCampaign: 5)
                let start = Date().addingTimeInterval(-600)
                var jobs: [NewJob] = []
                var wanted: [String: (at: Date, field: String, value: String)] = [:]
                for index in 0..<500 {
                    let adset = adsets[index % 40]
                    // Requested times out of insertion order: the latest request, not the last inserted, wins.
                    let at = start.addingTimeInterval(Double((index * 7919) % 500))
                    let field = index % 3 == 0 ? "status" : index % 3 == 1 ? "daily_budget" : "name"
                    let (change, value): (String, String) =
                        switch field {
                        case "status": index % 2 == 0 ? (#"{"status":"PAUSED"}"#, "PAUSED") : (#"{"status":"ACTIVE"}"#, "ACTIVE")
                        case "daily_budget": (#"{"daily_budget":{"amount":\#(100 + index % 40),"currency":"USD"}}"#, String((100 + index % 40) * 100))
                        default: (#"{"name":"adset v\#(index)"}"#, "adset v\(index)")
                        }
                    jobs.append(Self.change(adset, change, at: at))
                    let key = "\(adset.adset)/\(field)"
                    if wanted[key].map({ at > $0.at }) ?? true { wanted[key] = (at, field, value) }
                }
                _ = try await store.insert(jobs)
                let job = AdChangeJob(settings: Self.settings(base: base), store: store)
                try await withRunningServices([Self.worker(store, job)], logger: TestDatabase.logger) { _ in
                    try await eventually("every change resolved") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 500
                    }
                }
                let calls = await sandbox.state.graphCalls
                #expect(calls.count <= 12, "\(calls.count) calls: \(calls.map { "\($0.method) \($0.what) \($0.operations)" })")
                #expect(calls.allSatisfy { $0.status == 200 }, "\(calls.map(\.status))")
                #expect(calls.allSatisfy { $0.maxAdSetsPerCampaign <= 1 }, "never two ad sets of one campaign in a batch")
                #expect(calls.filter { $0.what == "batch" }.allSatisfy { $0.operations <= 50 })
                for (key, expected) in wanted {
                    let id = String(key.split(separator: "/")[0])
                    let object = try #require(await sandbox.state.adObject(id))
                    if expected.field == "daily_budget", object.fields["daily_budget"] == "10000", expected.value == "10000" { continue }
                    #expect(object.fields[expected.field] == expected.value, "\(key): \(object.fields[expected.field] ?? "nil") != \(expected.value)")
                }
                // One write per object and field that changed: coalesced, not replayed.
                let writes = await sandbox.state.adWrites
                #expect(Set(writes.map { "\($0.object)/\($0.field)" }).count == writes.count, "a field written twice")
                let audited = try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_meta_ad_audit WHERE how = 'applied'")
                #expect(audited == writes.count)
                let superseded = try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE result->>'superseded_by' IS NOT NULL")
                #expect(superseded + writes.count + (try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE (result->>'unchanged')::boolean")) == 500)
                let entries = try await AdChangeLedger(store: store).audit(limit: 1000)
                #expect(entries.allSatisfy { $0.fbtraceID != nil && $0.batch != nil && !$0.jobs.isEmpty })
                #expect(entries.reduce(0) { $0 + $1.jobs.count } + (try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE (result->>'unchanged')::boolean")) >= writes.count)
            }
        }
    }

    @Test("a throttled ad account pauses its key until Meta's estimate, spends no attempt, and sends once resumed; the token reaches no log line or row")
    func throttledAccount() async throws {
        let logs = LogMessages()
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let adsets = await Self.seed(sandbox, campaigns: 4, perCampaign: 1)
                await sandbox.state.addFault(.init(target: "graph-batch", mode: "throttle", code: 80004, regainMinutes: 9, count: 1))
                let ids = try await store.insert(adsets.map { Self.change($0, #"{"status":"PAUSED"}"#, at: Date()) }).inserted
                let job = AdChangeJob(settings: Self.settings(base: base), store: store)
                let workers = [Self.worker(store, job, logger: logs.logger(withMetadata: true)), Self.worker(store, job, logger: logs.logger(withMetadata: true))]
                try await withRunningServices(workers, logger: TestDatabase.logger) { _ in
                    try await eventually("the account paused") { try await !store.keyPauses().isEmpty }
                    let pause = try #require(try await store.keyPauses().first)
                    #expect(pause.key == AdChange.limitKey("act_1"))
                    #expect(abs(pause.until.timeIntervalSinceNow - 540) < 30)
                    try await eventually("the changes back, waiting") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'available' AND attempt = 0") == 4
                    }
                    let batches = await sandbox.state.graphCalls.filter { $0.what == "batch" }.count
                    #expect(batches == 1)
                    #expect(await sandbox.state.adWrites.isEmpty)
                    #expect(try await store.resume(key: AdChange.limitKey("act_1")))
                    try await eventually("sent after the resume") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed' AND attempt = 1") == 4
                    }
                }
                for id in ids { #expect(try await store.require(id).errors.isEmpty, "a throttle is no failure") }
                for adset in adsets { #expect(await sandbox.state.adObject(adset.adset)?.fields["status"] == "PAUSED") }
                #expect(!logs.all.isEmpty && !logs.all.contains { $0.contains(Self.token) }, "the token reached a log line")
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE errors::text LIKE '%\(Self.token)%' OR result::text LIKE '%\(Self.token)%' OR args::text LIKE '%\(Self.token)%'") == 0)
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_key_pauses WHERE reason LIKE '%\(Self.token)%'") == 0)
            }
        }
    }

    @Test("null items of a timed-out batch never double-apply: applied ones complete after a read, the others are sent again once")
    func nullItems() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let adsets = await Self.seed(sandbox, campaigns: 8, perCampaign: 1)
                // The last 4 of the 8 answer null; Meta applied the first 2 of those.
                await sandbox.state.addFault(.init(target: "graph-timeout", mode: "partial_timeout", count: 1, nulls: 4, applied: 2))
                let ids = try await store.insert(adsets.map { Self.change($0, #"{"daily_budget":{"amount":120,"currency":"USD"}}"#, at: Date()) }).inserted
                let job = AdChangeJob(settings: Self.settings(base: base), store: store)
                try await withRunningServices([Self.worker(store, job)], logger: TestDatabase.logger) { _ in
                    try await eventually("every change completed") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 8
                    }
                }
                let writes = await sandbox.state.adWrites
                #expect(writes.count == 8, "each ad set's budget written exactly once: \(writes.map(\.object))")
                #expect(Set(writes.map(\.object)).count == 8)
                for adset in adsets { #expect(await sandbox.state.adObject(adset.adset)?.fields["daily_budget"] == "12000") }
                var confirmed = 0
                var retried = 0
                for id in ids {
                    let record = try await store.require(id)
                    if record.result?.contains("Meta had applied it") == true { confirmed += 1 }
                    if record.attempt == 2 {
                        retried += 1
                        #expect(record.errors.first?.message.contains("not in place") == true)
                    }
                }
                #expect(confirmed == 2 && retried == 2, "confirmed \(confirmed), retried \(retried)")
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_meta_ad_audit WHERE how = 'confirmed'") == 2)
            }
        }
    }

    @Test("a fifth budget change of an ad set within an hour is deferred to the next allowed minute, not sent")
    func fifthBudgetChange() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let adset = await Self.seed(sandbox, campaigns: 1, perCampaign: 1)[0]
                let clock = ManualClock(Date())
                let first = clock.now()
                let job = AdChangeJob(settings: Self.settings(base: base), store: store, clock: clock)
                try await withRunningServices([Self.worker(store, job)], logger: TestDatabase.logger) { _ in
                    for (index, amount) in [110, 120, 130, 140].enumerated() {
                        _ = try await store.insert([Self.change(adset, #"{"daily_budget":{"amount":\#(amount),"currency":"USD"}}"#, at: clock.now())])
                        try await eventually("change \(index + 1) applied") {
                            try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == index + 1
                        }
                        clock.advance(by: 300)
                    }
                    let fifth = try await store.insert([Self.change(adset, #"{"daily_budget":{"amount":150,"currency":"USD"}}"#, at: clock.now())]).inserted[0]
                    try await eventually("the fifth deferred") {
                        let record = try await store.require(fifth)
                        return record.state == .available && record.attempt == 0 && record.runAt.timeIntervalSinceNow > 60
                    }
                    let record = try await store.require(fifth)
                    // 4 changes at first, +5, +10, +15 minutes; now is +20: the first leaves the hour at +60, rounded up to a minute.
                    let allowed = (first.addingTimeInterval(3600).timeIntervalSince1970 / 60).rounded(.up) * 60
                    let expectedWait = allowed - clock.now().timeIntervalSince1970
                    #expect(abs(record.runAt.timeIntervalSinceNow - expectedWait) < 5, "deferred \(record.runAt.timeIntervalSinceNow) s, expected \(expectedWait) s")
                    #expect(record.errors.isEmpty)
                }
                let budgetWrites = await sandbox.state.adWrites.filter { $0.field == "daily_budget" }
                #expect(budgetWrites.map(\.value) == ["11000", "12000", "13000", "14000"], "the fifth was not sent")
            }
        }
    }

    @Test("a budget change over the guardrail waits for approval (visible, approved or rejected); a daily budget under the minimum and a wrong currency are dead; dry run sends nothing")
    func guardrails() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let adsets = await Self.seed(sandbox, campaigns: 4, perCampaign: 1)
                let yen = await Self.seed(sandbox, account: "act_2", currency: "JPY", campaigns: 1, perCampaign: 1, budget: "5000")[0]
                let dry = await Self.seed(sandbox, account: "act_3", campaigns: 1, perCampaign: 1)[0]
                let now = Date()
                let big = try await store.insert([Self.change(adsets[0], #"{"daily_budget":{"amount":300,"currency":"USD"}}"#, at: now)]).inserted[0]
                let rejected = try await store.insert([Self.change(adsets[1], #"{"daily_budget":{"amount":20,"currency":"USD"}}"#, at: now)]).inserted[0]
                let tooSmall = try await store.insert([Self.change(adsets[2], #"{"daily_budget":{"amount":0.5,"currency":"USD"}}"#, at: now)]).inserted[0]
                let wrongCurrency = try await store.insert([Self.change(adsets[3], #"{"daily_budget":{"amount":100,"currency":"EUR"}}"#, at: now)]).inserted[0]
                let inYen = try await store.insert([Self.change(yen, #"{"daily_budget":{"amount":6000,"currency":"JPY"}}"#, at: now, account: "act_2")]).inserted[0]
                let dryRun = try await store.insert([Self.change(dry, #"{"status":"PAUSED"}"#, at: now, account: "act_3")]).inserted[0]
                let job = AdChangeJob(settings: Self.settings(base: base, accounts: ["act_3": Guardrails(dryRun: true)]), store: store)
                let ledger = AdChangeLedger(store: store)
                try await withRunningServices([Self.worker(store, job)], logger: TestDatabase.logger) { _ in
                    try await eventually("two held") { try await ledger.approvals(pendingOnly: true).count == 2 }
                    try await eventually("the others resolved") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state IN ('completed', 'dead')") == 4
                    }
                    let held = try await ledger.approvals(pendingOnly: true)
                    let bigHold = try #require(held.first { $0.job == big })
                    #expect(bigHold.oldValue == "10000" && bigHold.newValue == "30000" && bigHold.reason.contains("200 %"), "\(bigHold)")
                    #expect(try await store.require(big).state == .available)
                    #expect(await sandbox.state.adObject(adsets[0].adset)?.fields["daily_budget"] == "10000", "nothing sent while held")
                    #expect(try await ledger.approve(job: big, by: "alice") == .decided)
                    #expect(try await ledger.reject(job: rejected, by: "bob") == .decided)
                    #expect(try await ledger.approve(job: rejected, by: "bob") == .notPending)
                    try await eventually("the approved change applied") { try await store.require(big).state == .completed }
                }
                #expect(await sandbox.state.adObject(adsets[0].adset)?.fields["daily_budget"] == "30000")
                #expect(try await store.require(rejected).state == .cancelled)
                #expect(await sandbox.state.adObject(adsets[1].adset)?.fields["daily_budget"] == "10000")
                let small = try await store.require(tooSmall)
                #expect(small.state == .dead && small.errors.last?.message.contains("under the minimum") == true, "\(small.errors)")
                let currency = try await store.require(wrongCurrency)
                #expect(currency.state == .dead && currency.errors.last?.message.contains("billed in USD") == true, "\(currency.errors)")
                #expect(try await store.require(inYen).state == .completed)
                #expect(await sandbox.state.adObject(yen.adset)?.fields["daily_budget"] == "6000", "JPY has offset 1")
                let dryRecord = try await store.require(dryRun)
                #expect(dryRecord.state == .completed && dryRecord.result?.contains("would_send") == true)
                #expect(await sandbox.state.adObject(dry.adset)?.fields["status"] == "ACTIVE", "dry run sent nothing")
                let audit = try await ledger.audit()
                #expect(audit.contains { $0.how == "dry_run" && $0.objectID == dry.adset })
                #expect(audit.contains { $0.objectID == adsets[0].adset && $0.oldValue == "10000" && $0.newValue == "30000" && $0.how == "applied" })
                #expect(try await ledger.approvals().first { $0.job == big }?.decidedBy == "alice")
            }
        }
    }
}
