public import ConveyorCore
public import ConveyorPostgres
public import Foundation
import Logging

/// The retraining loop's settings (`ML_*`).
public struct MLSettings: Sendable, Equatable {
    /// Retrain when the recorded predictions' CTR MAE over the window is above this. Default 0.02.
    public var maeThreshold: Double
    /// Fewer completed predictions than this in the window: `insufficient_data`. Default 50.
    public var minSamples: Int
    /// The accuracy window. Default 7 days.
    public var window: Duration
    /// Retrain a model older than this even when accurate (`model_age`). Default 30 days.
    public var maxModelAge: Duration
    /// Training reads completed predictions of this long before the check. Default 30 days.
    public var trainingWindow: Duration
    /// The newest share of the training window held out to compare challenger and current model. Default 0.2.
    public var holdoutShare: Double
    /// The L2 penalty. Default 1.
    public var l2: Double
    /// `ML_RETRAIN_NOTIFY_URL`: a Slack-compatible incoming webhook for retrained, not promoted and failed checks.
    public var notifyURL: String?

    public init(
        maeThreshold: Double = 0.02, minSamples: Int = 50, window: Duration = .seconds(7 * 86_400), maxModelAge: Duration = .seconds(30 * 86_400),
        trainingWindow: Duration = .seconds(30 * 86_400), holdoutShare: Double = 0.2, l2: Double = 1, notifyURL: String? = nil
    ) {
        self.maeThreshold = maeThreshold
        self.minSamples = minSamples
        self.window = window
        self.maxModelAge = maxModelAge
        self.trainingWindow = trainingWindow
        self.holdoutShare = holdoutShare
        self.l2 = l2
        self.notifyURL = notifyURL
    }

    /// A setting that cannot be used, named.
    /// A setting that cannot be used, named.
    public typealias Invalid = SettingError

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(Invalid) -> MLSettings {
        var settings = MLSettings()
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        func number(_ name: String, _ range: ClosedRange<Double>) throws(Invalid) -> Double? {
            guard let text = value(name) else { return nil }
            guard let number = Double(text), range.contains(number) else { throw Invalid(setting: name, reason: "must be a number in \(range.lowerBound)…\(range.upperBound), got \(text)") }
            return number
        }
        if let mae = try number("ML_MAE_THRESHOLD", 0.000001...1) { settings.maeThreshold = mae }
        if let samples = try number("ML_MIN_SAMPLES", 2...1_000_000) { settings.minSamples = Int(samples) }
        if let days = try number("ML_WINDOW_DAYS", 1...365) { settings.window = .seconds(days * 86_400) }
        if let days = try number("ML_MAX_MODEL_AGE_DAYS", 1...3650) { settings.maxModelAge = .seconds(days * 86_400) }
        if let days = try number("ML_TRAINING_WINDOW_DAYS", 1...3650) { settings.trainingWindow = .seconds(days * 86_400) }
        if let share = try number("ML_HOLDOUT_SHARE", 0.05...0.5) { settings.holdoutShare = share }
        if let l2 = try number("ML_L2", 0.000001...1_000_000) { settings.l2 = l2 }
        if let url = value("ML_RETRAIN_NOTIFY_URL") {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                // The URL is a secret (a Slack webhook's path): not repeated in the message.
                throw Invalid(setting: "ML_RETRAIN_NOTIFY_URL", reason: "must be an http(s) URL")
            }
            settings.notifyURL = url
        }
        return settings
    }
}

/// `ml.retrain_check`: is the CTR model still accurate, and if not (or it is older than 30 days), train
/// a challenger and promote it only when it beats the current model on the same recent rows.
///
/// Scheduled daily at 02:00 UTC (schedule `ml.retrain_check`), and enqueued on demand (`conveyor
/// enqueue ml.retrain_check`) or by a purchase signal with a unique key (a burst is one check). Its
/// result is the status object, also kept in `conveyor_ml_checks`:
/// - `no_retrain_needed`: `current_accuracy {ctr_mae, ctr_rmse, ctr_accuracy, total_predictions}`,
///   `threshold`, `message`, `checked_at`;
/// - `insufficient_data`: `count`, `message`, `checked_at`;
/// - `retrained`: `reason`, `samples`, `metrics {test_r2, test_mae, test_accuracy, trained_at}`,
///   `old_metrics`, `improvement {r2_improvement, mae_improvement}`, `model_version`, `retrained_at`, `checked_at`;
/// - `not_promoted`: `reason`, `samples`, `metrics` (the challenger's), `current_metrics`, `model_version`, `checked_at`.
/// A database error fails the attempt (retried) with the error recorded.
public struct RetrainCheckJob: JobHandler {
    public typealias Args = JSONValue
    public static let kind = "ml.retrain_check"
    /// The daily check at 02:00 UTC (one job per slot across schedulers and restarts).
    public static func schedule() throws -> Schedule {
        try Schedule(name: "ml.retrain_check", cron: "0 2 * * *", kind: kind, args: #"{"trigger":"schedule"}"#)
    }

    public let settings: MLSettings
    let store: MLStore?
    let clock: any ConveyorClock

    public init(settings: MLSettings, store: PostgresJobStore?, clock: any ConveyorClock = SystemClock()) {
        self.settings = settings
        self.store = store.map(MLStore.init(store:))
        self.clock = clock
    }

    public var options: JobKindOptions {
        JobKindOptions(timeout: .seconds(1800), retry: RetryPolicy(maxAttempts: 5, backoff: RetryPolicy.exponential(base: .seconds(60), cap: .seconds(3600))))
    }

    public func run(_ args: JSONValue, context: JobContext) async throws -> JobOutcome {
        guard let store else { throw JobFailure.retryAfter(.seconds(60), "ml.retrain_check needs the database: this process has none") }
        do {
            let (status, reason, result) = try await check(store: store, job: context.id, logger: context.logger)
            try await store.recordCheck(job: context.id, status: status, reason: reason, result: result, at: clock.now())
            if status == "retrained" || status == "not_promoted" {
                try await notify(context, text: Self.summary(status: status, reason: reason, result: result))
            }
            return .completedWithResult(json: result)
        } catch {
            let reason = ConveyorStoreError.describe(error)
            if context.attempt >= context.maxAttempts {
                try? await notify(context, text: "CTR retrain check failed for good after \(context.attempt) attempts: \(reason)")
            }
            // Recorded in the job's history with what PostgreSQL said, and retried.
            throw CheckFailed(description: "the retrain check failed: \(reason)")
        }
    }

    func notify(_ context: JobContext, text: String) async throws {
        guard settings.notifyURL != nil else { return }
        try await context.enqueue([NewJob(kind: NotifyJob.kind, args: MLJSON.encode(.object(["text": .string(text)])))])
    }

    static func summary(status: String, reason: String?, result: String) -> String {
        guard case .object(let fields)? = try? JSONParser.parse(result) else { return "CTR retrain check: \(status)" }
        func mae(_ key: String) -> String {
            if case .object(let metrics)? = fields[key], case .number(let value)? = metrics["test_mae"] { return String(format: "%.5f", value) }
            return "?"
        }
        switch status {
        case "retrained": return "CTR model retrained (\(reason ?? "?")): holdout MAE \(mae("old_metrics")) → \(mae("metrics")); promoted as the current model"
        default: return "CTR model retrain (\(reason ?? "?")) not promoted: the challenger's holdout MAE \(mae("metrics")) is not below the current \(mae("current_metrics"))"
        }
    }

    /// The check itself: (status, reason, result JSON).
    func check(store: MLStore, job: UUID, logger: Logger) async throws -> (String, String?, String) {
        let now = clock.now()
        let checkedAt = JSONValue.string(RFC3339.format(now))
        let recent = try await store.accuracy(since: now.addingTimeInterval(-settings.window.seconds))
        if recent.count < settings.minSamples {
            return (
                "insufficient_data", nil,
                MLJSON.encode(.object([
                    "status": .string("insufficient_data"), "count": .integer(Int64(recent.count)),
                    "message": .string("Need at least \(settings.minSamples) samples for retraining, got \(recent.count)"), "checked_at": checkedAt,
                ]))
            )
        }
        let current = try await store.currentModel()
        let age = current.map { now.timeIntervalSince($0.promotedAt ?? $0.trainedAt) }
        let reason: String
        if recent.mae > settings.maeThreshold {
            reason = "accuracy"
        } else if let age, age > settings.maxModelAge.seconds {
            reason = "model_age"
        } else {
            let accuracy: JSONValue = .object([
                "ctr_mae": .number(recent.mae), "ctr_rmse": .number(recent.rmse), "ctr_accuracy": .number(recent.accuracy),
                "total_predictions": .integer(Int64(recent.count)),
            ])
            return (
                "no_retrain_needed", nil,
                MLJSON.encode(.object([
                    "status": .string("no_retrain_needed"), "current_accuracy": accuracy, "threshold": .number(settings.maeThreshold),
                    "message": .string("Model accuracy is within threshold"), "checked_at": checkedAt,
                ]))
            )
        }
        // Train on the older rows of the training window, compare on the newest share of it.
        let from = now.addingTimeInterval(-settings.trainingWindow.seconds)
        guard let cutoff = try await store.holdoutStart(since: from, share: settings.holdoutShare) else {
            return ("insufficient_data", reason, Self.insufficient(0, settings.minSamples, checkedAt))
        }
        let started = ContinuousClock.now
        let fit: CTRTrainer.Fit
        do {
            fit = try await CTRTrainer.fit(store.pages(from: from, to: cutoff), options: .init(l2: settings.l2))
        } catch CTRTrainer.Failure.noRows {
            return ("insufficient_data", reason, Self.insufficient(0, settings.minSamples, checkedAt))
        }
        guard fit.samples >= settings.minSamples else { return ("insufficient_data", reason, Self.insufficient(fit.samples, settings.minSamples, checkedAt)) }
        // Both on the same holdout rows: the challenger, and the current model (or, with none stored, the
        // predictions the ML service made).
        var challenger = CTRMetrics.Accumulator()
        var incumbent = CTRMetrics.Accumulator()
        try await store.pages(from: cutoff, to: now.addingTimeInterval(1)).forEachPage { rows in
            for row in rows {
                challenger.add(predicted: fit.model.score(row), actual: row.actualCTR)
                incumbent.add(predicted: current?.model.score(row) ?? row.predictedCTR, actual: row.actualCTR)
            }
        }
        let new = challenger.metrics
        let old = incumbent.metrics
        let trainedAt = JSONValue.string(RFC3339.format(now))
        let metrics = Self.metrics(new, trainedAt: trainedAt)
        let oldMetrics = Self.metrics(old, trainedAt: current.map { .string(RFC3339.format($0.trainedAt)) } ?? .null)
        let promote = new.count > 0 && new.mae < old.mae
        let version = try await store.saveModel(
            fit.model, samples: fit.samples, trainFrom: from, trainTo: cutoff,
            metrics: MLJSON.encode(.object(["holdout": metrics, "holdout_rows": .integer(Int64(new.count)), "iterations": .integer(Int64(fit.iterations))])),
            promote: promote, at: now)
        logger.notice(
            promote ? "CTR model retrained and promoted" : "CTR challenger not promoted",
            metadata: [
                "reason": "\(reason)", "samples": "\(fit.samples)", "holdout_rows": "\(new.count)", "new_mae": "\(new.mae)", "old_mae": "\(old.mae)",
                "model_version": "\(version)", "seconds": "\((ContinuousClock.now - started).seconds)",
            ])
        if promote {
            return (
                "retrained", reason,
                MLJSON.encode(.object([
                    "status": .string("retrained"), "reason": .string(reason), "samples": .integer(Int64(fit.samples)), "metrics": metrics,
                    "old_metrics": oldMetrics,
                    "improvement": .object(["r2_improvement": .number(new.r2 - old.r2), "mae_improvement": .number(old.mae - new.mae)]),
                    "model_version": .integer(Int64(version)), "retrained_at": trainedAt, "checked_at": checkedAt,
                ]))
            )
        }
        return (
            "not_promoted", reason,
            MLJSON.encode(.object([
                "status": .string("not_promoted"), "reason": .string(reason), "samples": .integer(Int64(fit.samples)), "metrics": metrics,
                "current_metrics": oldMetrics, "model_version": .integer(Int64(version)),
                "message": .string("The challenger's holdout MAE is not below the current model's on the same rows: the current model stays"),
                "checked_at": checkedAt,
            ]))
        )
    }

    struct CheckFailed: Error, CustomStringConvertible {
        var description: String
    }

    static func metrics(_ metrics: CTRMetrics, trainedAt: JSONValue) -> JSONValue {
        .object(["test_r2": .number(metrics.r2), "test_mae": .number(metrics.mae), "test_accuracy": .number(metrics.accuracy), "trained_at": trainedAt])
    }

    static func insufficient(_ count: Int, _ minimum: Int, _ checkedAt: JSONValue) -> String {
        MLJSON.encode(.object([
            "status": .string("insufficient_data"), "count": .integer(Int64(count)),
            "message": .string("Need at least \(minimum) samples for retraining, got \(count)"), "checked_at": checkedAt,
        ]))
    }
}
