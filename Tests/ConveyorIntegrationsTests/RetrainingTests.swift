import ConveyorCore
import ConveyorKindML
import ConveyorMaintenance
import ConveyorPostgres
import ConveyorSandbox
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import Logging
import PostgresNIO
import Testing

/// The CTR retraining loop: the model in Swift, the ml.* kinds on real PostgreSQL, the schedule.
@Suite("CTR retraining loop", .serialized, .timeLimit(.minutes(3)))
struct RetrainingTests {
    /// The generating model of a regime: CTR = σ(b + hook + template + slope·duration).
    struct Regime {
        var intercept: Double
        var hooks: [String: Double]
        var templates: [String: Double]
        var slope: Double

        func ctr(hook: String, template: String, duration: Double) -> Double {
            1 / (1 + exp(-(intercept + hooks[hook]! + templates[template]! + slope * duration)))
        }
    }

    static let regimeA = Regime(intercept: -3.5, hooks: ["question": 0, "shock": 0.6, "story": -0.4], templates: ["t1": 0, "t2": 0.3], slope: 0.03)
    static let regimeB = Regime(intercept: -2.6, hooks: ["question": 0.5, "shock": -0.3, "story": 0.2], templates: ["t1": 0.2, "t2": -0.2], slope: -0.02)

    /// `count` rows of `regime`, clicks the expected count (so the data is exactly the model's).
    static func rows(_ regime: Regime, count: Int, seed: UInt64, impressions: Double = 2000) -> [OutcomeRow] {
        let random = SeededRandomSource(seed: seed)
        let hooks = ["question", "shock", "story"]
        let templates = ["t1", "t2"]
        return (0..<count).map { index in
            let hook = hooks[index % 3]
            let template = templates[(index / 3) % 2]
            let duration = (5 + 55 * random.nextUnit()).rounded()
            let ctr = regime.ctr(hook: hook, template: template, duration: duration)
            return OutcomeRow(
                impressions: impressions, clicks: (impressions * ctr).rounded(), hookType: hook, templateID: template, features: ["duration": duration], predictedCTR: ctr)
        }
    }

    @Test("IRLS on synthetic data recovers the generating coefficients (differences between categories, the slope per unit)")
    func recoversCoefficients() async throws {
        let fit = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeA, count: 6000, seed: 1, impressions: 100_000), pageSize: 700), options: .init(l2: 1e-6))
        let model = fit.model
        func weight(_ field: String, _ value: String) -> Double {
            model.weights[model.features.firstIndex(of: .oneHot(field: field, value: value))!]
        }
        #expect(abs((weight("hook_type", "shock") - weight("hook_type", "question")) - 0.6) < 0.01)
        #expect(abs((weight("hook_type", "story") - weight("hook_type", "question")) - -0.4) < 0.01)
        #expect(abs((weight("template_id", "t2") - weight("template_id", "t1")) - 0.3) < 0.01)
        guard case .numeric(_, _, let std)? = model.features.last else { Issue.record("no numeric feature"); return }
        #expect(abs(model.weights.last! / std - 0.03) < 0.001, "slope per unit of duration")
        #expect(fit.iterations < 20)
        // And scores what it was trained on.
        var metrics = CTRMetrics.Accumulator()
        for row in Self.rows(Self.regimeA, count: 500, seed: 2) { metrics.add(predicted: model.score(row), actual: Self.regimeA.ctr(hook: row.hookType!, template: row.templateID!, duration: row.features["duration"]!)) }
        #expect(metrics.metrics.mae < 0.0005)
    }

    @Test("examples/score_ctr.py scores rows exactly as Swift does (to 1e-9), from the stored artifact")
    func pythonAgrees() async throws {
        let fit = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeB, count: 900, seed: 3)))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ctr-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let encoder = JSONEncoder()
        try encoder.encode(fit.model.artifact).write(to: folder.appendingPathComponent("model.json"))
        var rows = Self.rows(Self.regimeB, count: 200, seed: 4)
        rows.append(OutcomeRow(impressions: 1, clicks: 0, hookType: "unknown-hook", templateID: nil, features: [:], predictedCTR: 0))
        let lines = rows.map { row -> String in
            var object: [String: JSONValue] = ["features": .object(row.features.mapValues { .number($0) })]
            if let hook = row.hookType { object["hook_type"] = .string(hook) }
            if let template = row.templateID { object["template_id"] = .string(template) }
            return String(decoding: try! encoder.encode(JSONValue.object(object)), as: UTF8.self)
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("rows.jsonl"))
        // Read back through the artifact, as another service would.
        let reread = try #require(CTRModel(artifact: try JSONParser.parse(try Data(contentsOf: folder.appendingPathComponent("model.json")))))
        #expect(reread == fit.model)
        let output = try await Self.run(
            ["python3", TestDatabase.repositoryRoot.appendingPathComponent("examples/score_ctr.py").path, folder.appendingPathComponent("model.json").path,
             folder.appendingPathComponent("rows.jsonl").path])
        let scores = output.split(separator: "\n").compactMap { Double($0) }
        #expect(scores.count == rows.count, "\(output)")
        for (row, python) in zip(rows, scores) { #expect(abs(reread.score(row) - python) < 1e-9) }
    }

    /// Runs a program to its end without blocking a thread, and returns its standard output.
    static func run(_ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        let output = Recorded<Data>()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { output.append([data]) }
        }
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        pipe.fileHandleForReading.readabilityHandler = nil
        let rest = pipe.fileHandleForReading.readDataToEndOfFile()
        #expect(status == 0)
        return String(decoding: output.all.reduce(Data(), +) + rest, as: UTF8.self)
    }

    static func migrate(_ client: PostgresClient) async throws {
        try await Migrator(migrations: Migrator.embedded.migrations + MLStore.migrations).migrate(client: client, logger: TestDatabase.logger)
    }

    /// Inserts completed predictions: `rows` spread evenly over `days` days before `now`, oldest first.
    static func insert(_ rows: [OutcomeRow], client: PostgresClient, now: Date, days: Double, prefix: String) async throws {
        for start in stride(from: 0, to: rows.count, by: 1000) {
            let slice = Array(rows[start..<min(start + 1000, rows.count)])
            let ids = slice.indices.map { "\(prefix)-\(start + $0)" }
            let times = slice.indices.map { now.addingTimeInterval(-days * 86_400 * (1 - Double(start + $0 + 1) / Double(rows.count + 1))) }
            let query: PostgresQuery = """
                INSERT INTO conveyor_ml_predictions (prediction_id, ad_id, predicted_ctr, hook_type, template_id, features, status, impressions, clicks,
                    actual_ctr, ctr_error, predicted_at, completed_at)
                SELECT i, 'ad-' || i, p, h, t, jsonb_build_object('duration', d), 'completed', n, c, c / n, p - c / n, at, at
                FROM unnest(\(ids), \(slice.map(\.predictedCTR)), \(slice.map { $0.hookType ?? "" }), \(slice.map { $0.templateID ?? "" }),
                            \(slice.map { $0.features["duration"] ?? 0 }), \(slice.map(\.impressions)), \(slice.map(\.clicks)), \(times)) AS u(i, p, h, t, d, n, c, at)
                """
            _ = try await client.query(query, logger: TestDatabase.logger).collect()
        }
    }

    static func check(_ store: PostgresJobStore, _ job: RetrainCheckJob) async throws -> [String: JSONValue] {
        let id = try await store.insert([NewJob(kind: RetrainCheckJob.kind)]).inserted[0]
        var registry = HandlerRegistry()
        registry.register(job)
        let worker = Worker(
            configuration: Worker.Configuration(queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 4)]), pollInterval: .milliseconds(50)),
            store: store, registry: registry, logger: TestDatabase.logger)
        try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
            try await eventually("the check finished") { try await store.require(id).state == .completed }
        }
        guard case .object(let result)? = try await store.require(id).result.flatMap({ try? JSONParser.parse($0) }) else {
            Issue.record("no result")
            return [:]
        }
        return result
    }

    @Test("42 samples: insufficient_data with the seed's message")
    func insufficientData() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let now = Date()
            try await Self.insert(Self.rows(Self.regimeA, count: 42, seed: 5), client: client, now: now, days: 5, prefix: "p")
            let store = PostgresJobStore(client: client)
            let result = try await Self.check(store, RetrainCheckJob(settings: MLSettings(), store: store))
            #expect(result["status"] == .string("insufficient_data"))
            #expect(result["count"] == .integer(42))
            #expect(result["message"] == .string("Need at least 50 samples for retraining, got 42"))
            #expect(result["checked_at"] != nil)
            #expect(try await MLStore(store: store).checks().first?.status == "insufficient_data")
        }
    }

    @Test("accurate predictions and a young model: no_retrain_needed with the current accuracy")
    func noRetrainNeeded() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            try await Self.insert(Self.rows(Self.regimeA, count: 300, seed: 6), client: client, now: Date(), days: 6, prefix: "p")
            let store = PostgresJobStore(client: client)
            let result = try await Self.check(store, RetrainCheckJob(settings: MLSettings(), store: store))
            #expect(result["status"] == .string("no_retrain_needed"), "\(result)")
            guard case .object(let accuracy)? = result["current_accuracy"] else { Issue.record("no current_accuracy"); return }
            #expect(accuracy["total_predictions"] == .integer(300))
            #expect(accuracy["ctr_accuracy"] == .number(1) || accuracy["ctr_accuracy"] == .integer(1))
            #expect(result["threshold"] == .number(0.02))
        }
    }

    @Test("a drifted regime pushes the 7-day MAE over 0.02: the check retrains, and the new model beats the old one on the same holdout")
    func driftRetrains() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            let ml = MLStore(store: store)
            let now = Date()
            // The current model learned regime A; the world is regime B now, and the service still predicts with A.
            let old = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeA, count: 3000, seed: 7))).model
            var rows = Self.rows(Self.regimeB, count: 2000, seed: 8)
            for index in rows.indices { rows[index].predictedCTR = old.score(rows[index]) }
            try await Self.insert(rows, client: client, now: now, days: 20, prefix: "b")
            _ = try await ml.saveModel(old, samples: 3000, trainFrom: now.addingTimeInterval(-60 * 86_400), trainTo: now.addingTimeInterval(-30 * 86_400), metrics: "{}", promote: true, at: now.addingTimeInterval(-5 * 86_400))
            let result = try await Self.check(store, RetrainCheckJob(settings: MLSettings(), store: store))
            #expect(result["status"] == .string("retrained"), "\(result)")
            #expect(result["reason"] == .string("accuracy"))
            guard case .object(let metrics)? = result["metrics"], case .object(let oldMetrics)? = result["old_metrics"],
                case .number(let newMAE)? = metrics["test_mae"], case .number(let oldMAE)? = oldMetrics["test_mae"]
            else { Issue.record("\(result)"); return }
            #expect(newMAE < oldMAE && oldMAE > 0.02, "new \(newMAE), old \(oldMAE)")
            guard case .integer(let samples)? = result["samples"] else { Issue.record("\(result)"); return }
            #expect((1590...1610).contains(samples), "the older 80 % trained it: \(samples)")
            guard case .object(let improvement)? = result["improvement"], case .number(let maeImprovement)? = improvement["mae_improvement"] else { Issue.record("\(result)"); return }
            #expect(abs(maeImprovement - (oldMAE - newMAE)) < 1e-12)
            let current = try #require(try await ml.currentModel())
            #expect(current.version == 2 && Int64(current.samples) == samples)
        }
    }

    @Test("a challenger that loses on the holdout is not_promoted (both metrics kept); a 31-day-old model is retrained for model_age")
    func notPromotedAndModelAge() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            let ml = MLStore(store: store)
            let now = Date()
            // Training rows come from regime A, the newest 20 % (the holdout) from regime B; the current
            // model is B's own: the challenger, trained on A, must lose. Predictions are accurate (MAE 0).
            let current = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeB, count: 3000, seed: 9))).model
            try await Self.insert(Self.rows(Self.regimeA, count: 800, seed: 10), client: client, now: now.addingTimeInterval(-2 * 86_400), days: 20, prefix: "a")
            try await Self.insert(Self.rows(Self.regimeB, count: 200, seed: 11), client: client, now: now, days: 1.9, prefix: "b")
            _ = try await ml.saveModel(current, samples: 3000, trainFrom: now, trainTo: now, metrics: "{}", promote: true, at: now.addingTimeInterval(-31 * 86_400))
            let result = try await Self.check(store, RetrainCheckJob(settings: MLSettings(), store: store))
            #expect(result["status"] == .string("not_promoted"), "\(result)")
            #expect(result["reason"] == .string("model_age"))
            #expect(result["metrics"] != nil && result["current_metrics"] != nil)
            #expect(try await ml.currentModel()?.version == 1, "the current model stays")

            // Now the whole window is regime B and the 31-day-old model is A's: retrained for model_age.
            _ = try await client.query("DELETE FROM conveyor_ml_predictions", logger: TestDatabase.logger).collect()
            _ = try await client.query("DELETE FROM conveyor_ml_models", logger: TestDatabase.logger).collect()
            let stale = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeA, count: 3000, seed: 12))).model
            _ = try await ml.saveModel(stale, samples: 3000, trainFrom: now, trainTo: now, metrics: "{}", promote: true, at: now.addingTimeInterval(-31 * 86_400))
            try await Self.insert(Self.rows(Self.regimeB, count: 1000, seed: 13), client: client, now: now, days: 20, prefix: "c")
            let retrained = try await Self.check(store, RetrainCheckJob(settings: MLSettings(), store: store))
            #expect(retrained["status"] == .string("retrained") && retrained["reason"] == .string("model_age"), "\(retrained)")
        }
    }

    @Test("predictions and outcomes through the kinds: actual CTR, ROAS and errors computed; a repeated prediction or outcome changes nothing; 10,000 outcomes in chunks")
    func recordKinds() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            var registry = HandlerRegistry()
            registry.register(chunk: RecordPredictionJob(store: store))
            registry.register(chunk: RecordOutcomeJob(store: store))
            let worker = Worker(
                configuration: Worker.Configuration(queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 1000)]), pollInterval: .milliseconds(50)),
                store: store, registry: registry, logger: TestDatabase.logger)
            let predictions = (0..<10_000).map { index in
                NewJob(kind: RecordPredictionJob.kind, args: #"{"prediction_id":"p\#(index)","ad_id":"ad\#(index)","predicted_ctr":0.02,"predicted_roas":2.0,"hook_type":"question","template_id":"t1","features":{"duration":\#(index % 60)}}"#)
            }
            try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
                _ = try await store.insert(predictions)
                try await eventually("predictions recorded") { try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_ml_predictions") == 10_000 }
                let outcomes = (0..<10_000).map { index in
                    NewJob(kind: RecordOutcomeJob.kind, args: #"{"prediction_id":"p\#(index)","impressions":1000,"clicks":\#(index % 50),"conversions":1,"spend":10,"revenue":\#(index % 7)}"#)
                }
                _ = try await store.insert(outcomes)
                try await eventually("outcomes recorded", timeout: .seconds(120)) {
                    try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_ml_predictions WHERE status = 'completed'") == 10_000
                }
                let row = try await client.query("SELECT actual_ctr, actual_roas, ctr_error, roas_error, outcome_at FROM conveyor_ml_predictions WHERE prediction_id = 'p123'", logger: TestDatabase.logger)
                var before: Date?
                for try await (ctr, roas, ctrError, roasError, at) in row.decode((Double, Double, Double, Double, Date).self) {
                    #expect(ctr == 0.023 && abs(roas - 0.4) < 1e-12 && abs(ctrError - (0.02 - 0.023)) < 1e-12 && abs(roasError - 1.6) < 1e-12)
                    before = at
                }
                // The same outcome and the same prediction again: nothing changes.
                let again = try await store.insert([
                    NewJob(kind: RecordOutcomeJob.kind, args: #"{"prediction_id":"p123","impressions":1000,"clicks":23,"conversions":1,"spend":10,"revenue":4}"#),
                    NewJob(kind: RecordPredictionJob.kind, args: #"{"prediction_id":"p123","ad_id":"other","predicted_ctr":0.9}"#),
                    NewJob(kind: RecordOutcomeJob.kind, args: #"{"prediction_id":"nope","impressions":10,"clicks":1}"#),
                    NewJob(kind: RecordOutcomeJob.kind, args: #"{"prediction_id":"p1","impressions":10,"clicks":11}"#),
                ]).inserted
                try await eventually("the repeats resolved") {
                    let first = try await store.require(again[0]).state, second = try await store.require(again[1]).state
                    let third = try await store.require(again[2]).attempt, fourth = try await store.require(again[3]).state
                    return first == .completed && second == .completed && third >= 1 && fourth == .dead
                }
                let repeatedOutcome = try await store.require(again[0]).result, repeatedPrediction = try await store.require(again[1]).result
                #expect(repeatedOutcome?.contains(#""changed": false"#) == true, "\(repeatedOutcome ?? "nil")")
                #expect(repeatedPrediction?.contains(#""recorded": false"#) == true, "\(repeatedPrediction ?? "nil")")
                #expect(try await store.require(again[2]).errors.first?.message.contains("no prediction with id nope") == true)
                #expect(try await store.require(again[3]).errors.first?.message.contains("clicks must be") == true)
                let after = try await client.query("SELECT outcome_at, ad_id, predicted_ctr FROM conveyor_ml_predictions WHERE prediction_id = 'p123'", logger: TestDatabase.logger)
                for try await (at, ad, predicted) in after.decode((Date, String, Double).self) {
                    #expect(at == before && ad == "ad123" && predicted == 0.02, "a repeat changed the row")
                }
            }
            // Chunks of up to 1,000: the 20,000 jobs ran in a few dozen handler calls, one statement each.
            let chunks = try await TestDatabase.count(client, "SELECT count(DISTINCT attempted_at) FROM conveyor_jobs WHERE kind = 'ml.record_outcome'")
            #expect(chunks < 100, "\(chunks) distinct start times")
        }
    }

    @Test("the daily 02:00 UTC schedule emits one check per day, through a scheduler restart")
    func dailySchedule() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock(RFC3339.parse("2026-12-01T01:59:00Z")!)
            let store = PostgresJobStore(client: client, clock: clock)
            func scheduler(_ holder: String) -> Scheduler {
                Scheduler(schedules: [try! RetrainCheckJob.schedule()], store: store, election: .init(name: "scheduler", holder: holder), clock: clock, logger: TestDatabase.logger)
            }
            func checks() async throws -> Int { try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'ml.retrain_check'") }
            try await scheduler("a").tick()
            #expect(try await checks() == 0)
            clock.set(RFC3339.parse("2026-12-01T02:00:20Z")!)
            try await scheduler("a").tick()
            try await scheduler("a").tick()
            #expect(try await checks() == 1)
            clock.set(RFC3339.parse("2026-12-01T02:05:00Z")!)
            try await scheduler("restarted").tick()
            #expect(try await checks() == 1, "a restart the same day emits nothing more")
            clock.set(RFC3339.parse("2026-12-02T02:00:05Z")!)
            try await scheduler("restarted").tick()
            #expect(try await checks() == 2)
            let slots = try await client.query("SELECT run_at FROM conveyor_jobs WHERE kind = 'ml.retrain_check' ORDER BY run_at", logger: TestDatabase.logger)
            var times: [Date] = []
            for try await time in slots.decode(Date.self) { times.append(time) }
            #expect(times == [RFC3339.parse("2026-12-01T02:00:00Z")!, RFC3339.parse("2026-12-02T02:00:00Z")!])
        }
    }

    @Test("a retrained model is announced to the Slack webhook as its own job; the webhook's URL never reaches a log line")
    func notification() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.migrate(client)
            let store = PostgresJobStore(client: client)
            try await WebhookToCAPITests.withSandbox { sandbox, base in
                let url = "\(base)/services/T0001/B0001/secret-webhook-token"
                let settings = MLSettings(notifyURL: url)
                let old = try await CTRTrainer.fit(InMemoryPages(Self.rows(Self.regimeA, count: 1000, seed: 14))).model
                var rows = Self.rows(Self.regimeB, count: 500, seed: 15)
                for index in rows.indices { rows[index].predictedCTR = old.score(rows[index]) }
                try await Self.insert(rows, client: client, now: Date(), days: 10, prefix: "n")
                let logs = LogMessages()
                var registry = HandlerRegistry()
                registry.register(RetrainCheckJob(settings: settings, store: store))
                registry.register(NotifyJob(settings: settings))
                let worker = Worker(
                    configuration: Worker.Configuration(queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 4)]), pollInterval: .milliseconds(50)),
                    store: store, registry: registry, logger: logs.logger(withMetadata: true))
                _ = try await store.insert([NewJob(kind: RetrainCheckJob.kind)])
                try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
                    try await eventually("the notification sent") { await !sandbox.state.slackMessages.isEmpty }
                }
                let message = try #require(await sandbox.state.slackMessages.first)
                #expect(message.contains("CTR model retrained (accuracy)"), "\(message)")
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'ml.notify' AND state = 'completed'") == 1)
                #expect(!logs.all.contains { $0.contains("secret-webhook-token") })
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE errors::text LIKE '%secret-webhook-token%' OR args::text LIKE '%secret-webhook-token%'") == 0)
            }
        }
    }
}
