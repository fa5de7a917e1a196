import ConveyorCore
public import ConveyorPostgres
public import Foundation
import Logging
import PostgresNIO

/// The ml.* kinds' tables (migrations/ml_*.sql). Time is the kinds' injected clock, bound into every
/// statement that needs one.
public struct MLStore: Sendable {
    public let store: PostgresJobStore
    var client: PostgresClient { store.client }
    let logger = PostgresJobStore.defaultLogger

    public init(store: PostgresJobStore) {
        self.store = store
    }

    /// The kinds' migrations (run with the runtime's by `conveyor migrate`).
    public static var migrations: [Migrator.Migration] { EmbeddedMigrations.all }

    // MARK: - Predictions and outcomes

    /// Inserts predictions not recorded yet; returns the ids inserted (a repeated one changes nothing).
    func recordPredictions(_ items: [Prediction], at now: Date) async throws -> Set<String> {
        guard !items.isEmpty else { return [] }
        // PostgresNIO binds no arrays of optionals: NaN and "" stand for none.
        let query: PostgresQuery = """
            INSERT INTO conveyor_ml_predictions (prediction_id, ad_id, predicted_ctr, predicted_roas, hook_type, template_id, features, model_version, predicted_at)
            SELECT i, a, c, CASE WHEN r = 'NaN' THEN NULL ELSE r END, nullif(h, ''), nullif(t, ''), f::jsonb, nullif(v, -1), coalesce(nullif(p, 'epoch'), \(now))
            FROM unnest(\(items.map(\.id)), \(items.map(\.adID)), \(items.map(\.predictedCTR)), \(items.map { $0.predictedROAS ?? .nan }),
                        \(items.map { $0.hookType ?? "" }), \(items.map { $0.templateID ?? "" }), \(items.map(\.featuresJSON)),
                        \(items.map { $0.modelVersion ?? -1 }), \(items.map { $0.predictedAt ?? Date(timeIntervalSince1970: 0) }))
                AS u(i, a, c, r, h, t, f, v, p)
            ON CONFLICT (prediction_id) DO NOTHING
            RETURNING prediction_id
            """
        var inserted: Set<String> = []
        for try await id in try await client.query(query, logger: logger).decode(String.self) { inserted.insert(id) }
        return inserted
    }

    /// Applies outcomes; returns, per outcome (by position), whether its prediction exists (`found`) and
    /// whether anything changed.
    func recordOutcomes(_ items: [Outcome], at now: Date) async throws -> [(found: Bool, changed: Bool)] {
        guard !items.isEmpty else { return [] }
        let positions = Array(0..<items.count)
        let query: PostgresQuery = """
            WITH u AS (
                SELECT * FROM unnest(\(positions), \(items.map { $0.predictionID ?? "" }), \(items.map { $0.adID ?? "" }), \(items.map(\.impressions)),
                                     \(items.map(\.clicks)), \(items.map(\.conversions)), \(items.map(\.spend)), \(items.map(\.revenue)), \(items.map(\.final)))
                    AS u(n, pid, ad, imp, clk, conv, spend, rev, final)
            ), target AS (
                SELECT u.*, coalesce(nullif(u.pid, ''),
                    (SELECT p.prediction_id FROM conveyor_ml_predictions p WHERE p.ad_id = u.ad ORDER BY p.predicted_at DESC LIMIT 1)) AS id
                FROM u
            ), changed AS (
                UPDATE conveyor_ml_predictions p SET
                    impressions = t.imp, clicks = t.clk, conversions = t.conv, spend = t.spend, revenue = t.rev,
                    actual_ctr = CASE WHEN t.imp > 0 THEN t.clk::float8 / t.imp END,
                    actual_roas = CASE WHEN t.spend > 0 THEN t.rev / t.spend END,
                    ctr_error = CASE WHEN t.imp > 0 THEN p.predicted_ctr - t.clk::float8 / t.imp END,
                    roas_error = CASE WHEN t.spend > 0 AND p.predicted_roas IS NOT NULL THEN p.predicted_roas - t.rev / t.spend END,
                    status = CASE WHEN t.final THEN 'completed' ELSE 'running' END,
                    outcome_at = \(now),
                    completed_at = CASE WHEN t.final THEN coalesce(p.completed_at, \(now)) END
                FROM (SELECT DISTINCT ON (id) * FROM target WHERE id IS NOT NULL ORDER BY id, n DESC) t
                WHERE p.prediction_id = t.id
                  AND (p.impressions, p.clicks, p.conversions, p.spend, p.revenue, p.status)
                      IS DISTINCT FROM (t.imp, t.clk, t.conv, t.spend, t.rev, CASE WHEN t.final THEN 'completed' ELSE 'running' END)
                RETURNING p.prediction_id
            )
            SELECT t.n, t.id IS NOT NULL AND EXISTS (SELECT 1 FROM conveyor_ml_predictions p WHERE p.prediction_id = t.id),
                   t.id IN (SELECT prediction_id FROM changed)
            FROM target t ORDER BY t.n
            """
        var result = Array(repeating: (found: false, changed: false), count: items.count)
        for try await (position, found, changed) in try await client.query(query, logger: logger).decode((Int, Bool, Bool?).self) {
            result[position] = (found, changed ?? false)
        }
        return result
    }

    // MARK: - Accuracy

    /// The recorded predictions' accuracy over completed ones since `since`.
    func accuracy(since: Date) async throws -> CTRMetrics {
        let query: PostgresQuery = """
            SELECT count(*)::int, coalesce(avg(abs(ctr_error)), 0), coalesce(sqrt(avg(ctr_error * ctr_error)), 0),
                   coalesce(avg(CASE WHEN abs(ctr_error) <= 0.2 * actual_ctr OR (actual_ctr = 0 AND predicted_ctr = 0) THEN 1.0 ELSE 0.0 END), 0)::float8
            FROM conveyor_ml_predictions WHERE status = 'completed' AND completed_at >= \(since) AND actual_ctr IS NOT NULL
            """
        for try await (count, mae, rmse, accuracy) in try await client.query(query, logger: logger).decode((Int, Double, Double, Double).self) {
            return CTRMetrics(count: count, mae: mae, rmse: rmse, r2: 0, accuracy: accuracy)
        }
        return CTRMetrics(count: 0, mae: 0, rmse: 0, r2: 0, accuracy: 0)
    }

    /// The time splitting training (before) from the holdout (at and after): the newest `share` of the
    /// completed rows since `since`; nil when there are none.
    func holdoutStart(since: Date, share: Double) async throws -> Date? {
        let query: PostgresQuery = """
            SELECT percentile_disc(\(1 - share)) WITHIN GROUP (ORDER BY completed_at)
            FROM conveyor_ml_predictions WHERE status = 'completed' AND completed_at >= \(since) AND impressions > 0
            """
        for try await cutoff in try await client.query(query, logger: logger).decode(Date?.self) { return cutoff }
        return nil
    }

    /// Completed rows with `from <= completed_at < to`, read in pages.
    public struct Pages: OutcomePages {
        let store: MLStore
        let from: Date
        let to: Date
        let pageSize: Int

        public func forEachPage(_ body: ([OutcomeRow]) throws -> Void) async throws {
            var after = (Date.distantPast, "")
            while true {
                let query: PostgresQuery = """
                    SELECT completed_at, prediction_id, impressions::float8, clicks::float8, coalesce(hook_type, ''), coalesce(template_id, ''), features::text, predicted_ctr
                    FROM conveyor_ml_predictions
                    WHERE status = 'completed' AND impressions > 0 AND completed_at >= \(from) AND completed_at < \(to)
                      AND (completed_at, prediction_id) > (\(after.0), \(after.1))
                    ORDER BY completed_at, prediction_id LIMIT \(pageSize)
                    """
                var rows: [OutcomeRow] = []
                rows.reserveCapacity(pageSize)
                var last = after
                let decoded = try await store.client.query(query, logger: store.logger).decode((Date, String, Double, Double, String, String, String, Double).self)
                for try await (completed, id, impressions, clicks, hook, template, features, predicted) in decoded {
                    rows.append(
                        OutcomeRow(
                            impressions: impressions, clicks: clicks, hookType: hook.isEmpty ? nil : hook, templateID: template.isEmpty ? nil : template,
                            features: Prediction.numericFeatures(features), predictedCTR: predicted))
                    last = (completed, id)
                }
                if rows.isEmpty { return }
                try body(rows)
                if rows.count < pageSize { return }
                after = last
            }
        }
    }

    func pages(from: Date, to: Date, pageSize: Int = 10_000) -> Pages { Pages(store: self, from: from, to: to, pageSize: pageSize) }

    // MARK: - Models

    /// A stored model.
    public struct StoredModel: Sendable {
        public var version: Int
        public var model: CTRModel
        public var artifact: String
        public var metrics: String
        public var samples: Int
        public var trainedAt: Date
        public var promotedAt: Date?
    }

    public func currentModel() async throws -> StoredModel? {
        let query: PostgresQuery = """
            SELECT version, artifact::text, metrics::text, samples, trained_at, promoted_at FROM conveyor_ml_models WHERE is_current
            """
        for try await (version, artifact, metrics, samples, trained, promoted) in try await client.query(query, logger: logger).decode(
            (Int, String, String, Int, Date, Date?).self)
        {
            guard let parsed = try? JSONParser.parse(artifact), let model = CTRModel(artifact: parsed) else {
                throw ConveyorStoreError.migration("model \(version)'s artifact is not a \(CTRModel.format) model")
            }
            return StoredModel(version: version, model: model, artifact: artifact, metrics: metrics, samples: samples, trainedAt: trained, promotedAt: promoted)
        }
        return nil
    }

    /// Stores a trained model, as the current one when `promote`; returns its version.
    public func saveModel(_ model: CTRModel, samples: Int, trainFrom: Date, trainTo: Date, metrics: String, promote: Bool, at now: Date) async throws -> Int {
        let artifact = MLJSON.encode(model.artifact)
        return try await client.withTransaction(logger: logger) { connection in
            if promote {
                _ = try await connection.query("UPDATE conveyor_ml_models SET is_current = false WHERE is_current", logger: logger)
            }
            let insert: PostgresQuery = """
                INSERT INTO conveyor_ml_models (algorithm, artifact, samples, train_from, train_to, metrics, trained_at, promoted_at, is_current)
                VALUES (\(CTRModel.algorithm), \(artifact)::jsonb, \(samples), \(trainFrom), \(trainTo), \(metrics)::jsonb, \(now),
                        CASE WHEN \(promote) THEN \(now)::timestamptz END, \(promote))
                RETURNING version
                """
            for try await version in try await connection.query(insert, logger: logger).decode(Int.self) { return version }
            throw ConveyorStoreError.migration("inserting a model returned no version")
        }
    }

    // MARK: - Checks

    func recordCheck(job: UUID, status: String, reason: String?, result: String, at now: Date) async throws {
        let query: PostgresQuery = """
            INSERT INTO conveyor_ml_checks (job_id, status, reason, result, checked_at) VALUES (\(job), \(status), \(reason), \(result)::jsonb, \(now))
            """
        _ = try await client.query(query, logger: logger)
    }

    /// One check, as `conveyor ml status` and the dashboard list them.
    public struct Check: Sendable {
        public var job: UUID
        public var status: String
        public var reason: String?
        public var result: String
        public var checkedAt: Date
    }

    public func checks(limit: Int = 20) async throws -> [Check] {
        let query: PostgresQuery = "SELECT job_id, status, reason, result::text, checked_at FROM conveyor_ml_checks ORDER BY checked_at DESC, id DESC LIMIT \(limit)"
        var result: [Check] = []
        for try await (job, status, reason, text, at) in try await client.query(query, logger: logger).decode((UUID, String, String?, String, Date).self) {
            result.append(Check(job: job, status: status, reason: reason, result: text, checkedAt: at))
        }
        return result
    }

    /// How many predictions there are by status.
    public func predictionCounts() async throws -> [String: Int] {
        var result: [String: Int] = [:]
        for try await (status, count) in try await client.query("SELECT status, count(*)::int FROM conveyor_ml_predictions GROUP BY status", logger: logger)
            .decode((String, Int).self)
        {
            result[status] = count
        }
        return result
    }
}

/// JSON text of a ``JSONValue``, keys sorted.
enum MLJSON {
    static func encode(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
