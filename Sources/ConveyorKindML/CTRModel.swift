public import ConveyorCore
import Foundation

/// One completed prediction as training and scoring see it.
public struct OutcomeRow: Sendable, Equatable {
    public var impressions: Double
    public var clicks: Double
    public var hookType: String?
    public var templateID: String?
    /// The numeric values of the prediction's `features` object.
    public var features: [String: Double]
    /// What the ML service predicted when it recorded the prediction.
    public var predictedCTR: Double

    public init(impressions: Double, clicks: Double, hookType: String?, templateID: String?, features: [String: Double], predictedCTR: Double) {
        self.impressions = impressions
        self.clicks = clicks
        self.hookType = hookType
        self.templateID = templateID
        self.features = features
        self.predictedCTR = predictedCTR
    }

    public var actualCTR: Double { impressions > 0 ? clicks / impressions : 0 }
}

/// A CTR model: L2-regularised logistic regression on clicks out of impressions (api-notes §G.3), its
/// features encoded and standardised as in training. ``artifact`` is the JSON any service scores with
/// (`examples/score_ctr.py`):
///
/// ```json
/// {"format": "conveyor.ctr-logistic.v1", "algorithm": "logistic_regression_l2_irls", "l2": 1.0,
///  "intercept": -3.2,
///  "features": [{"kind": "one_hot", "field": "hook_type", "value": "question", "weight": 0.41},
///               {"kind": "numeric", "field": "duration", "mean": 21.5, "std": 8.2, "weight": -0.07}]}
/// ```
/// `ctr = 1 / (1 + exp(-z))`, `z = intercept + Σ weight·x` in the listed order, where `x` is 1 when the
/// row's `field` (`hook_type`, `template_id`) equals `value` and 0 otherwise (`one_hot`), and
/// `(features[field] − mean) / std` for `numeric` (0 when the row lacks it: the training mean).
public struct CTRModel: Sendable, Equatable {
    public enum Feature: Sendable, Equatable {
        case oneHot(field: String, value: String)
        case numeric(field: String, mean: Double, std: Double)
    }

    public static let format = "conveyor.ctr-logistic.v1"
    public static let algorithm = "logistic_regression_l2_irls"

    public var intercept: Double
    public var features: [Feature]
    public var weights: [Double]
    public var l2: Double

    public init(intercept: Double, features: [Feature], weights: [Double], l2: Double) {
        self.intercept = intercept
        self.features = features
        self.weights = weights
        self.l2 = l2
    }

    /// The encoded, standardised inputs of `row` (without the intercept).
    public func encode(_ row: OutcomeRow) -> [Double] {
        features.map { feature in
            switch feature {
            case .oneHot(let field, let value): (field == "hook_type" ? row.hookType : row.templateID) == value ? 1 : 0
            case .numeric(let field, let mean, let std): row.features[field].map { ($0 - mean) / std } ?? 0
            }
        }
    }

    /// The predicted CTR of `row`.
    public func score(_ row: OutcomeRow) -> Double {
        var z = intercept
        for (weight, x) in zip(weights, encode(row)) { z += weight * x }
        return Self.sigmoid(z)
    }

    static func sigmoid(_ z: Double) -> Double {
        z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
    }

    /// The JSON artifact.
    public var artifact: JSONValue {
        let encoded: [JSONValue] = zip(features, weights).map { feature, weight in
            switch feature {
            case .oneHot(let field, let value):
                .object(["kind": .string("one_hot"), "field": .string(field), "value": .string(value), "weight": .number(weight)])
            case .numeric(let field, let mean, let std):
                .object(["kind": .string("numeric"), "field": .string(field), "mean": .number(mean), "std": .number(std), "weight": .number(weight)])
            }
        }
        return .object([
            "format": .string(Self.format), "algorithm": .string(Self.algorithm), "l2": .number(l2), "intercept": .number(intercept),
            "features": .array(encoded),
        ])
    }

    /// Reads an artifact back; nil when it is not one this build scores.
    public init?(artifact: JSONValue) {
        guard case .object(let object) = artifact, object["format"] == .string(Self.format), case .array(let list)? = object["features"],
            let intercept = Self.number(object["intercept"])
        else { return nil }
        var features: [Feature] = []
        var weights: [Double] = []
        for item in list {
            guard case .object(let entry) = item, case .string(let kind)? = entry["kind"], case .string(let field)? = entry["field"],
                let weight = Self.number(entry["weight"])
            else { return nil }
            switch kind {
            case "one_hot":
                guard case .string(let value)? = entry["value"] else { return nil }
                features.append(.oneHot(field: field, value: value))
            case "numeric":
                guard let mean = Self.number(entry["mean"]), let std = Self.number(entry["std"]), std > 0 else { return nil }
                features.append(.numeric(field: field, mean: mean, std: std))
            default: return nil
            }
            weights.append(weight)
        }
        self.init(intercept: intercept, features: features, weights: weights, l2: Self.number(object["l2"]) ?? 0)
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .number(let number)?: number
        case .integer(let number)?: Double(number)
        default: nil
        }
    }
}

/// Where training reads its rows: page by page, as often as it needs (a pass per IRLS iteration), so a
/// million records never sit in memory at once.
public protocol OutcomePages: Sendable {
    func forEachPage(_ body: ([OutcomeRow]) throws -> Void) async throws
}

/// Rows already in memory (tests, small sets).
public struct InMemoryPages: OutcomePages {
    public var rows: [OutcomeRow]
    public var pageSize: Int
    public init(_ rows: [OutcomeRow], pageSize: Int = 10_000) {
        self.rows = rows
        self.pageSize = pageSize
    }
    public func forEachPage(_ body: ([OutcomeRow]) throws -> Void) async throws {
        for start in stride(from: 0, to: rows.count, by: pageSize) { try body(Array(rows[start..<min(start + pageSize, rows.count)])) }
    }
}

/// Fits ``CTRModel``s by Newton's method (IRLS) on the aggregated binomial likelihood (api-notes §G.3).
public enum CTRTrainer {
    public struct Options: Sendable {
        /// The L2 penalty on the weights (not the intercept). Default 1.
        public var l2: Double
        public var maxIterations: Int
        /// Stop when no parameter moves more than this. Default 1e-9.
        public var tolerance: Double
        /// Categories seen fewer times than this share one "other" (no column). Default 1 (all kept).
        public var minCategoryCount: Int

        public init(l2: Double = 1, maxIterations: Int = 50, tolerance: Double = 1e-9, minCategoryCount: Int = 1) {
            self.l2 = l2
            self.maxIterations = maxIterations
            self.tolerance = tolerance
            self.minCategoryCount = minCategoryCount
        }
    }

    public struct Fit: Sendable {
        public var model: CTRModel
        public var samples: Int
        public var iterations: Int
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case noRows
        case singular
        public var description: String {
            switch self {
            case .noRows: "no training rows with impressions"
            case .singular: "the training system is singular (a constant or duplicated feature with no penalty)"
            }
        }
    }

    /// Fits on `pages`: one pass for the encoding (categories, means, standard deviations), then one per
    /// Newton step.
    public static func fit(_ pages: some OutcomePages, options: Options = Options()) async throws -> Fit {
        // Pass 1: the encoding.
        var hooks: [String: Int] = [:]
        var templates: [String: Int] = [:]
        var sums: [String: (count: Double, sum: Double, squares: Double)] = [:]
        var samples = 0
        var impressions = 0.0
        var clicks = 0.0
        try await pages.forEachPage { rows in
            for row in rows where row.impressions > 0 {
                samples += 1
                impressions += row.impressions
                clicks += row.clicks
                if let hook = row.hookType { hooks[hook, default: 0] += 1 }
                if let template = row.templateID { templates[template, default: 0] += 1 }
                for (name, value) in row.features where value.isFinite {
                    var entry = sums[name] ?? (0, 0, 0)
                    entry.count += 1
                    entry.sum += value
                    entry.squares += value * value
                    sums[name] = entry
                }
            }
        }
        guard samples > 0, impressions > 0 else { throw Failure.noRows }
        var features: [CTRModel.Feature] = []
        features += hooks.filter { $0.value >= options.minCategoryCount }.keys.sorted().map { .oneHot(field: "hook_type", value: $0) }
        features += templates.filter { $0.value >= options.minCategoryCount }.keys.sorted().map { .oneHot(field: "template_id", value: $0) }
        for name in sums.keys.sorted() {
            let entry = sums[name]!
            let mean = entry.sum / entry.count
            let variance = max(entry.squares / entry.count - mean * mean, 0)
            // A constant feature carries nothing: left out (its std would be 0).
            guard variance > 1e-18 else { continue }
            features.append(.numeric(field: name, mean: mean, std: variance.squareRoot()))
        }
        let p = features.count + 1
        // Start at the overall rate: the intercept-only optimum.
        let rate = min(max(clicks / impressions, 1e-6), 1 - 1e-6)
        var beta = [log(rate / (1 - rate))] + Array(repeating: 0.0, count: p - 1)
        var iterations = 0
        let shell = CTRModel(intercept: 0, features: features, weights: [], l2: options.l2)
        for iteration in 1...max(1, options.maxIterations) {
            iterations = iteration
            var hessian = Array(repeating: 0.0, count: p * p)
            var gradient = Array(repeating: 0.0, count: p)
            var x = Array(repeating: 0.0, count: p)
            try await pages.forEachPage { rows in
                for row in rows where row.impressions > 0 {
                    x[0] = 1
                    let encoded = shell.encode(row)
                    for j in 0..<encoded.count { x[j + 1] = encoded[j] }
                    var z = 0.0
                    for j in 0..<p { z += beta[j] * x[j] }
                    let probability = CTRModel.sigmoid(z)
                    let residual = row.impressions * probability - row.clicks
                    let weight = row.impressions * probability * (1 - probability)
                    for j in 0..<p {
                        gradient[j] += residual * x[j]
                        guard x[j] != 0 else { continue }
                        let wx = weight * x[j]
                        for k in j..<p where x[k] != 0 { hessian[j * p + k] += wx * x[k] }
                    }
                }
            }
            for j in 1..<max(p, 1) where j < p {
                gradient[j] += options.l2 * beta[j]
                hessian[j * p + j] += options.l2
            }
            for j in 0..<p { for k in 0..<j { hessian[j * p + k] = hessian[k * p + j] } }
            guard let step = solve(hessian, gradient, size: p) else { throw Failure.singular }
            var moved = 0.0
            for j in 0..<p {
                beta[j] -= step[j]
                moved = max(moved, abs(step[j]))
            }
            if moved < options.tolerance { break }
        }
        return Fit(model: CTRModel(intercept: beta[0], features: features, weights: Array(beta.dropFirst()), l2: options.l2), samples: samples, iterations: iterations)
    }

    /// Solves `a · x = b` (a symmetric positive definite, row-major `size × size`) by Cholesky; nil when
    /// it is not positive definite.
    static func solve(_ a: [Double], _ b: [Double], size n: Int) -> [Double]? {
        var l = Array(repeating: 0.0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard sum > 0 else { return nil }
                    l[i * n + i] = sum.squareRoot()
                } else {
                    l[i * n + j] = sum / l[j * n + j]
                }
            }
        }
        var y = Array(repeating: 0.0, count: n)
        for i in 0..<n {
            var sum = b[i]
            for k in 0..<i { sum -= l[i * n + k] * y[k] }
            y[i] = sum / l[i * n + i]
        }
        var x = Array(repeating: 0.0, count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            var sum = y[i]
            for k in (i + 1)..<n { sum -= l[k * n + i] * x[k] }
            x[i] = sum / l[i * n + i]
        }
        return x
    }
}

/// Accuracy of CTR predictions against outcomes (api-notes §G.1).
public struct CTRMetrics: Sendable, Equatable {
    public var count: Int
    public var mae: Double
    public var rmse: Double
    /// R², with scikit-learn's finite convention for a constant target (1 when perfect, else 0).
    public var r2: Double
    /// The share of rows predicted within 20 % of the actual CTR.
    public var accuracy: Double

    /// Accumulates rows one at a time (pages of a holdout).
    public struct Accumulator: Sendable {
        var count = 0
        var absolute = 0.0
        var squared = 0.0
        var sum = 0.0
        var sumSquares = 0.0
        var within = 0

        public init() {}

        public mutating func add(predicted: Double, actual: Double) {
            count += 1
            let error = predicted - actual
            absolute += abs(error)
            squared += error * error
            sum += actual
            sumSquares += actual * actual
            if abs(error) <= 0.2 * actual || (actual == 0 && predicted == 0) { within += 1 }
        }

        public var metrics: CTRMetrics {
            guard count > 0 else { return CTRMetrics(count: 0, mae: 0, rmse: 0, r2: 0, accuracy: 0) }
            let n = Double(count)
            let total = sumSquares - sum * sum / n
            let r2 = total > 1e-300 ? 1 - squared / total : (squared == 0 ? 1 : 0)
            return CTRMetrics(count: count, mae: absolute / n, rmse: (squared / n).squareRoot(), r2: r2, accuracy: Double(within) / n)
        }
    }
}
