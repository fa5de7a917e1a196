import Foundation

/// Per-kind limits set at deploy time, overriding what the kinds declare: the JSON of
/// `CONVEYOR_LIMITS`, e.g. `{"video.render": {"concurrency": 4}}`.
///
/// `concurrency` is the most jobs of the kind running at once across the cluster
/// (``JobKindOptions/concurrencyLimit``); `null` lifts a declared limit.
public struct KindLimits: Sendable, Equatable {
    /// The most running jobs per kind; `nil` lifts the kind's declared limit.
    public var concurrency: [String: Int?]

    /// No overrides.
    public init(concurrency: [String: Int?] = [:]) {
        self.concurrency = concurrency
    }

    /// The most a concurrency limit may be.
    public static let maxConcurrency = 100_000

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
                case ("concurrency", .integer(let number)):
                    guard (1...Int64(maxConcurrency)).contains(number) else {
                        throw ParseError(description: "\(kind).concurrency: expected an integer from 1 to \(maxConcurrency) or null, got \(number)")
                    }
                    limits.concurrency[kind] = Int(number)
                case ("concurrency", _):
                    throw ParseError(description: "\(kind).concurrency: expected an integer or null")
                default:
                    throw ParseError(description: "\(kind): unknown setting \(name.debugDescription) (known: concurrency)")
                }
            }
        }
        return limits
    }

    /// `declared` with these overrides applied.
    public func concurrency(appliedTo declared: [String: Int]) -> [String: Int] {
        var result = declared
        for (kind, limit) in concurrency { result[kind] = limit }
        return result
    }
}
