public import Foundation

/// What a handler returns when it did not fail: the closed set of successful endings.
///
/// Failures are thrown instead (any error retries per policy; see ``JobFailure`` for
/// permanent failure and retry-after).
public enum JobOutcome: Sendable, Equatable {
    /// The job is done.
    case completed
    /// The job is done, with a result to keep on its row: JSON text, at most
    /// ``JobOutcome/maxResultBytes`` (a larger or malformed one fails the job for good, recorded, instead
    /// of being written). Shown by `conveyor jobs show`, the dashboard and `/api/jobs/ID`.
    case completedWithResult(json: String)
    /// Run the job again after `delay` without spending an attempt (e.g. a resource is not ready yet).
    case snooze(Duration)
    /// Stop the job for good; it ends `cancelled` with `reason` recorded.
    case cancel(reason: String)
}

extension JobOutcome {
    /// The largest result kept: 256 KiB of JSON. A result is for status, a path, counts — a payload
    /// belongs in storage of its own.
    public static let maxResultBytes = 256 << 10

    /// Done, keeping `result` encoded as JSON on the job's row (`return try .completed(result: status)`).
    public static func completed<Result: Encodable>(result: Result) throws -> JobOutcome {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return .completedWithResult(json: String(decoding: try encoder.encode(result), as: UTF8.self))
    }

    /// Why a result cannot be kept (too large, not JSON, unstorable), or nil if it can.
    public static func problem(withResult json: String) -> String? {
        let size = json.utf8.count
        guard size <= maxResultBytes else { return "result is \(size) bytes, at most \(maxResultBytes) allowed" }
        do {
            _ = try JSONParser.parse(json)
        } catch {
            return "result is not valid JSON: \(error)"
        }
        if let problem = JSONStorageCheck.problem(in: json, maxDepth: NewJob.maxArgsDepth) {
            return "result cannot be stored: \(problem)"
        }
        return nil
    }
}

/// Errors a handler throws to steer the retry logic beyond the default policy.
public enum JobFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The job cannot succeed however often it is retried: it goes to `dead` now.
    case permanent(String)
    /// Retry after exactly `delay` (e.g. an API's `Retry-After`), still spending an attempt.
    case retryAfter(Duration, String)
    /// An upstream said "too many calls for this key, wait until `until`": the key (the job's own
    /// ``NewJob/limitKey`` when `nil`) is paused cluster-wide until then, so no job with it starts on
    /// any worker, and this job waits with them without spending the attempt. Without any key, the job
    /// alone waits until then (a snooze).
    case throttled(key: String?, until: Date, String)
    /// The handler gave up on a deadline of its own (a per-job timeout): recorded as a `timeout`
    /// failure, retried per the policy like one.
    case timedOut(String)

    public var description: String {
        switch self {
        case .permanent(let message): message
        case .retryAfter(_, let message): message
        case .throttled(_, _, let message): message
        case .timedOut(let message): message
        }
    }
}
