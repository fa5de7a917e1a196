public import ConveyorCore
public import ConveyorPostgres
public import Foundation

/// What the ML service predicted for an ad: the args of `ml.record_prediction`.
///
/// `{"prediction_id": "p-123", "ad_id": "ad-9", "predicted_ctr": 0.031, "predicted_roas": 2.4,
///   "hook_type": "question", "template_id": "t-7", "features": {"duration": 21}, "model_version": 3,
///   "predicted_at": "2026-12-02T09:30:00Z"}`
public struct Prediction: Sendable, Equatable {
    public var id: String
    public var adID: String
    public var predictedCTR: Double
    public var predictedROAS: Double?
    public var hookType: String?
    public var templateID: String?
    /// The `features` object as JSON text (stored as given; its numbers are model inputs).
    public var featuresJSON: String
    public var modelVersion: Int?
    public var predictedAt: Date?

    static func parse(_ args: JSONValue) -> Result<Prediction, MLInvalid> {
        guard case .object(let fields) = args else { return .failure(.init("args must be a JSON object")) }
        guard let id = MLArgs.text(fields["prediction_id"]) else { return .failure(.init("prediction_id is required (1–200 characters)")) }
        guard let ad = MLArgs.text(fields["ad_id"]) else { return .failure(.init("ad_id is required (1–200 characters)")) }
        guard let ctr = MLArgs.number(fields["predicted_ctr"]), ctr >= 0, ctr <= 1 else { return .failure(.init("predicted_ctr must be a number from 0 to 1")) }
        var prediction = Prediction(id: id, adID: ad, predictedCTR: ctr, featuresJSON: "{}")
        if let value = fields["predicted_roas"], value != .null {
            guard let roas = MLArgs.number(value), roas.isFinite else { return .failure(.init("predicted_roas must be a number")) }
            prediction.predictedROAS = roas
        }
        prediction.hookType = MLArgs.text(fields["hook_type"])
        prediction.templateID = MLArgs.text(fields["template_id"])
        if let features = fields["features"], features != .null {
            guard case .object = features else { return .failure(.init("features must be an object")) }
            prediction.featuresJSON = MLJSON.encode(features)
        }
        if case .integer(let version)? = fields["model_version"] { prediction.modelVersion = Int(version) }
        if case .string(let text)? = fields["predicted_at"] {
            guard let at = RFC3339.parse(text) else { return .failure(.init("predicted_at must be RFC 3339")) }
            prediction.predictedAt = at
        }
        return .success(prediction)
    }

    /// The numeric values of a `features` object (others are not model inputs).
    static func numericFeatures(_ json: String) -> [String: Double] {
        guard case .object(let fields)? = try? JSONParser.parse(json) else { return [:] }
        var values: [String: Double] = [:]
        for (key, value) in fields {
            switch value {
            case .integer(let number): values[key] = Double(number)
            case .number(let number) where number.isFinite: values[key] = number
            case .bool(let flag): values[key] = flag ? 1 : 0
            default: break
            }
        }
        return values
    }
}

/// What happened to an ad: the args of `ml.record_outcome`.
///
/// `{"prediction_id": "p-123" | "ad_id": "ad-9", "impressions": 1200, "clicks": 37, "conversions": 3,
///   "spend": 12.5, "revenue": 40.0, "final": true}`; without `prediction_id` it is the ad's latest
/// prediction. `final: false` records outcomes so far (status `running`).
public struct Outcome: Sendable, Equatable {
    public var predictionID: String?
    public var adID: String?
    public var impressions: Int64
    public var clicks: Int64
    public var conversions: Int64
    public var spend: Double
    public var revenue: Double
    public var final: Bool

    static func parse(_ args: JSONValue) -> Result<Outcome, MLInvalid> {
        guard case .object(let fields) = args else { return .failure(.init("args must be a JSON object")) }
        let prediction = MLArgs.text(fields["prediction_id"])
        let ad = MLArgs.text(fields["ad_id"])
        guard prediction != nil || ad != nil else { return .failure(.init("prediction_id or ad_id is required")) }
        guard let impressions = MLArgs.count(fields["impressions"]) else { return .failure(.init("impressions must be a whole number ≥ 0")) }
        guard let clicks = MLArgs.count(fields["clicks"]), clicks <= impressions else { return .failure(.init("clicks must be a whole number from 0 to impressions")) }
        let conversions = MLArgs.count(fields["conversions"]) ?? 0
        let spend = MLArgs.number(fields["spend"]) ?? 0
        let revenue = MLArgs.number(fields["revenue"]) ?? 0
        guard spend >= 0, revenue >= 0, spend.isFinite, revenue.isFinite else { return .failure(.init("spend and revenue must be numbers ≥ 0")) }
        var final = true
        if case .bool(let flag)? = fields["final"] { final = flag }
        return .success(Outcome(predictionID: prediction, adID: ad, impressions: impressions, clicks: clicks, conversions: conversions, spend: spend, revenue: revenue, final: final))
    }
}

/// Why ml.* args are refused.
public struct MLInvalid: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

enum MLArgs {
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)? where !text.isEmpty && text.count <= 200 && !text.contains("\u{0}"): text
        case .integer(let number)?: String(number)
        default: nil
        }
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .integer(let number)?: Double(number)
        case .number(let number)?: number
        default: nil
        }
    }

    static func count(_ value: JSONValue?) -> Int64? {
        switch value {
        case .integer(let number)? where number >= 0: number
        case .number(let number)? where number >= 0 && number == number.rounded() && number < 9e15: Int64(number)
        default: nil
        }
    }
}

/// `ml.record_prediction`: predictions in one statement per chunk (up to 1,000); a repeated
/// prediction id changes nothing (`{"recorded": false}`).
public struct RecordPredictionJob: ChunkHandler {
    public typealias Args = JSONValue
    public static let kind = "ml.record_prediction"
    let store: MLStore?
    let clock: any ConveyorClock

    public init(store: PostgresJobStore?, clock: any ConveyorClock = SystemClock()) {
        self.store = store.map(MLStore.init(store:))
        self.clock = clock
    }

    public var chunk: ChunkOptions { ChunkOptions(size: 1000, linger: .milliseconds(250)) }

    public func run(_ jobs: [ChunkItem<JSONValue>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        var results: [UUID: ChunkResult] = [:]
        var valid: [(UUID, Prediction)] = []
        for job in jobs {
            switch Prediction.parse(job.args) {
            case .failure(let invalid): results[job.id] = .permanent("invalid ml.record_prediction args: \(invalid.reason)")
            case .success(let prediction): valid.append((job.id, prediction))
            }
        }
        guard let store else {
            for (id, _) in valid { results[id] = .failed("ml.record_prediction needs the database: this process has none") }
            return results
        }
        // One id twice in a chunk: the first is recorded, the second changes nothing.
        var seen: Set<String> = []
        let unique = valid.filter { seen.insert($0.1.id).inserted }
        let inserted = try await store.recordPredictions(unique.map(\.1), at: clock.now())
        var reported: Set<String> = []
        for (id, prediction) in valid {
            let first = inserted.contains(prediction.id) && reported.insert(prediction.id).inserted
            results[id] = MLResult.json(["prediction_id": .string(prediction.id), "recorded": .bool(first)])
        }
        return results
    }
}

/// `ml.record_outcome`: outcomes in one statement per chunk (up to 1,000); actual CTR and ROAS and the
/// errors are computed there; a repeated outcome changes nothing (`{"changed": false}`). An outcome
/// whose prediction is not recorded yet is retried (it may be on its way).
public struct RecordOutcomeJob: ChunkHandler {
    public typealias Args = JSONValue
    public static let kind = "ml.record_outcome"
    let store: MLStore?
    let clock: any ConveyorClock

    public init(store: PostgresJobStore?, clock: any ConveyorClock = SystemClock()) {
        self.store = store.map(MLStore.init(store:))
        self.clock = clock
    }

    public var options: JobKindOptions {
        JobKindOptions(retry: RetryPolicy(maxAttempts: 8, backoff: RetryPolicy.exponential(base: .seconds(15), cap: .seconds(3600))))
    }

    public var chunk: ChunkOptions { ChunkOptions(size: 1000, linger: .milliseconds(250)) }

    public func run(_ jobs: [ChunkItem<JSONValue>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        var results: [UUID: ChunkResult] = [:]
        var valid: [(UUID, Outcome)] = []
        for job in jobs {
            switch Outcome.parse(job.args) {
            case .failure(let invalid): results[job.id] = .permanent("invalid ml.record_outcome args: \(invalid.reason)")
            case .success(let outcome): valid.append((job.id, outcome))
            }
        }
        guard let store else {
            for (id, _) in valid { results[id] = .failed("ml.record_outcome needs the database: this process has none") }
            return results
        }
        let applied = try await store.recordOutcomes(valid.map(\.1), at: clock.now())
        for ((id, outcome), result) in zip(valid, applied) {
            guard result.found else {
                results[id] = .failed("no prediction \(outcome.predictionID.map { "with id \($0)" } ?? "for ad \(outcome.adID ?? "")") is recorded yet")
                continue
            }
            var fields: [String: JSONValue] = ["changed": .bool(result.changed)]
            if outcome.impressions > 0 { fields["actual_ctr"] = .number(Double(outcome.clicks) / Double(outcome.impressions)) }
            if outcome.spend > 0 { fields["actual_roas"] = .number(outcome.revenue / outcome.spend) }
            results[id] = MLResult.json(fields)
        }
        return results
    }
}

enum MLResult {
    static func json(_ fields: [String: JSONValue]) -> ChunkResult {
        .outcome(.completedWithResult(json: MLJSON.encode(.object(fields))))
    }
}
