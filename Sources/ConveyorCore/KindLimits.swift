import Foundation

/// Per-kind limits set at deploy time, overriding what the kinds declare: the JSON of
/// `CONVEYOR_LIMITS`, e.g.
/// `{"video.render": {"concurrency": 4}, "meta.ad_changes": {"rate": {"starts": 30, "per_seconds": 60}}}`.
///
/// `concurrency` is the most jobs of the kind running at once across the cluster
/// (``JobKindOptions/concurrencyLimit``), `rate` the most starts per window and limit key
/// (``JobKindOptions/rateLimit``); `null` lifts a declared limit, an absent setting keeps it.
public struct KindLimits: Sendable, Equatable {
    /// The most running jobs per kind; a `nil` value lifts the kind's declared limit.
    public var concurrency: [String: Int?]
    /// Starts per window and key, per kind; a `nil` value lifts the kind's declared rate.
    public var rate: [String: RateLimit?]

    /// No overrides.
    public init(concurrency: [String: Int?] = [:], rate: [String: RateLimit?] = [:]) {
        self.concurrency = concurrency
        self.rate = rate
    }

    /// The most a concurrency limit, or a rate's starts per window, may be.
    public static let maxConcurrency = 100_000
    /// The longest rate window: a day.
    public static let maxWindowSeconds = 86_400.0

    /// Why a `CONVEYOR_LIMITS` value was refused.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses the JSON object of kind → settings; unknown settings and out-of-range values are refused,
    /// so a typo does not silently run a render farm unlimited.
    public static func parse(_ text: String) throws(ParseError) -> KindLimits {
        let value: JSONValue
        do {
            value = try JSONParser.parse(text)
        } catch {
            throw ParseError(description: "not valid JSON: \(error)")
        }
        guard case .object(let kinds) = value else {
            throw ParseError(description: #"expected an object of kind to settings, e.g. {"video.render": {"concurrency": 4}}"#)
        }
        var limits = KindLimits()
        for (kind, settings) in kinds {
            guard NewJob.isValidKind(kind) else { throw ParseError(description: "\(kind.debugDescription) is not a kind name ([a-z0-9_.-]{1,100})") }
            guard case .object(let fields) = settings else { throw ParseError(description: "\(kind): expected an object of settings") }
            for (name, field) in fields {
                switch (name, field) {
                case ("concurrency", .null):
                    limits.concurrency[kind] = .some(nil)
                case ("concurrency", _):
                    limits.concurrency[kind] = try count(field, "\(kind).concurrency")
                case ("rate", .null):
                    limits.rate[kind] = .some(nil)
                case ("rate", .object(let rate)):
                    for key in rate.keys where key != "starts" && key != "per_seconds" {
                        throw ParseError(description: "\(kind).rate: unknown setting \(key.debugDescription) (known: starts, per_seconds)")
                    }
                    guard let starts = rate["starts"], let per = rate["per_seconds"] else {
                        throw ParseError(description: #"\#(kind).rate: expected {"starts": N, "per_seconds": S}"#)
                    }
                    let seconds: Double
                    switch per {
                    case .integer(let value): seconds = Double(value)
                    case .number(let value): seconds = value
                    default: throw ParseError(description: "\(kind).rate.per_seconds: expected a number of seconds")
                    }
                    guard seconds >= 0.001 && seconds <= maxWindowSeconds else {
                        throw ParseError(description: "\(kind).rate.per_seconds: expected 0.001 to \(Int(maxWindowSeconds)), got \(seconds)")
                    }
                    limits.rate[kind] = RateLimit(starts: try count(starts, "\(kind).rate.starts"), per: .seconds(seconds))
                case ("rate", _):
                    throw ParseError(description: #"\#(kind).rate: expected {"starts": N, "per_seconds": S} or null"#)
                default:
                    throw ParseError(description: "\(kind): unknown setting \(name.debugDescription) (known: concurrency, rate)")
                }
            }
        }
        return limits
    }

    private static func count(_ value: JSONValue, _ setting: String) throws(ParseError) -> Int {
        guard case .integer(let number) = value, (1...Int64(maxConcurrency)).contains(number) else {
            throw ParseError(description: "\(setting): expected an integer from 1 to \(maxConcurrency) or null")
        }
        return Int(number)
    }

    /// `declared` with these overrides applied; kinds left with no limit are dropped.
    public func applied(to declared: [String: KindLimit]) -> [String: KindLimit] {
        var result = declared
        for (kind, limit) in concurrency { result[kind, default: KindLimit()].concurrency = limit }
        for (kind, limit) in rate { result[kind, default: KindLimit()].rate = limit }
        return result.filter { !$0.value.isEmpty }
    }
}
