public import Foundation

/// How one attempt ended, as the executor observed it.
public enum AttemptResult: Sendable, Equatable {
    /// The handler returned.
    case outcome(JobOutcome)
    /// The attempt failed; `retryAfter` overrides the policy's backoff when set.
    case failed(message: String, kind: FailureKind, retryAfter: Duration? = nil)
    /// The worker stopped the attempt on shutdown: the job goes back without spending the attempt.
    case interrupted
    /// The handler threw ``JobFailure/throttled(key:until:_:)``; `key` is nil when it named none.
    case throttled(key: String?, until: Date, message: String)

    /// Classifies an error thrown by a handler.
    public init(error: any Error) {
        switch error {
        case JobFailure.permanent(let message):
            self = .failed(message: message, kind: .permanent)
        case JobFailure.retryAfter(let delay, let message):
            self = .failed(message: message, kind: .retryAfter, retryAfter: delay)
        case JobFailure.throttled(let key, let until, let message):
            self = .throttled(key: key, until: until, message: message)
        case JobFailure.timedOut(let message):
            self = .failed(message: message, kind: .timeout)
        default:
            self = .failed(message: AttemptResult.describe(error), kind: .error)
        }
    }

    /// A readable message for an arbitrary error: its description, prefixed with its type.
    public static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        let type = String(describing: Swift.type(of: error))
        return text.hasPrefix(type) ? text : "\(type): \(text)"
    }
}

/// A failure to record in the job's history.
public struct FailureRecord: Sendable, Equatable {
    /// The message, safe to show to operators; at most ``maxMessageBytes``, without NUL characters.
    public var message: String
    /// The category.
    public var kind: FailureKind

    /// The most bytes of a message kept in the history: 8 KiB. An upstream API's error body can be
    /// megabytes; the history is shown on every page about the job.
    public static let maxMessageBytes = 8 << 10

    /// Creates a failure record; `message` is made storable (``storable(_:limit:)``).
    public init(message: String, kind: FailureKind) {
        self.message = Self.storable(message)
        self.kind = kind
    }

    /// `text` as PostgreSQL can store it and an operator can read it: U+0000 (which `text` and
    /// `jsonb` refuse) replaced by U+FFFD, and cut to at most `limit` UTF-8 bytes, saying how long it was.
    public static func storable(_ text: String, limit: Int = maxMessageBytes) -> String {
        var text = text
        if text.utf8.contains(0) { text = text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") }
        let size = text.utf8.count
        guard size > limit else { return text }
        let note = " … [cut: \(size) bytes in all]"
        let utf8 = Array(text.utf8)
        var end = max(0, limit - note.utf8.count)
        // Cut on a scalar boundary: never between a character's lead byte and its continuation bytes.
        while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: utf8[..<end], as: UTF8.self) + note
    }
}

extension JobResolution {
    /// The longest delay written for a retry or a snooze: 10 years. `run_at` is a `timestamptz`, and a
    /// `Retry-After` of 10¹⁵ seconds from an upstream would make PostgreSQL refuse the whole flush.
    public static let maxDelay = Duration.seconds(10 * 365 * 24 * 3600)

    /// This resolution as PostgreSQL can store it: delays clamped to `0...maxDelay`, messages and
    /// reasons made storable (``FailureRecord/storable(_:limit:)``).
    public var storable: JobResolution {
        func clamp(_ delay: Duration) -> Duration { min(max(delay, .zero), Self.maxDelay) }
        switch self {
        case .complete, .completeWithResult, .release: return self
        case .throttle(let key, let until, let reason):
            // `until` becomes a timestamptz: keep it within what PostgreSQL and RFC 3339 both hold.
            let bounded = min(max(until, Date(timeIntervalSince1970: 0)), Date(timeIntervalSince1970: 253_402_300_799))
            return .throttle(key: FailureRecord.storable(key, limit: 255), until: bounded, reason: FailureRecord.storable(reason))
        case .retry(let after, let failure): return .retry(after: clamp(after), FailureRecord(message: failure.message, kind: failure.kind))
        case .dead(let failure): return .dead(FailureRecord(message: failure.message, kind: failure.kind))
        case .snooze(let after): return .snooze(clamp(after))
        case .cancel(let reason): return .cancel(reason: FailureRecord.storable(reason))
        }
    }
}

/// The next state of a job after an attempt: the pure core of the lifecycle (see `docs/lifecycle.md`).
public enum JobResolution: Sendable, Equatable {
    /// `running → completed`.
    case complete
    /// `running → completed`, keeping `json` (checked: ``JobOutcome/problem(withResult:)``) as its result.
    case completeWithResult(json: String)
    /// `running → available` at now + `after`, the failure recorded, the attempt spent.
    case retry(after: Duration, FailureRecord)
    /// `running → dead`, the failure recorded.
    case dead(FailureRecord)
    /// `running → available` at now + the delay, the attempt not spent.
    case snooze(Duration)
    /// `running → cancelled` with the reason.
    case cancel(reason: String)
    /// `running → available` now, the attempt not spent (shutdown).
    case release
    /// `running → available`, the attempt not spent, and `key` paused until `until` (no job with it
    /// starts before): an upstream throttled the key. The job waits for the pause when `key` is its own
    /// limit key (so resuming the key releases it too), else until `until`. An empty key pauses nothing.
    case throttle(key: String, until: Date, reason: String)

    /// The state the job ends up in.
    public var nextState: JobState {
        switch self {
        case .complete, .completeWithResult: .completed
        case .retry, .snooze, .release, .throttle: .available
        case .dead: .dead
        case .cancel: .cancelled
        }
    }

    /// Decides what follows an attempt.
    ///
    /// - Parameters:
    ///   - result: how the attempt ended.
    ///   - attempt: the attempt's number, 1-based.
    ///   - maxAttempts: attempts allowed before dead-letter.
    ///   - policy: the kind's retry policy; its backoff is used unless the failure says when to retry.
    ///   - random: the source of backoff jitter.
    public static func resolve(
        _ result: AttemptResult, attempt: Int, maxAttempts: Int, policy: RetryPolicy, random: any RandomSource
    ) -> JobResolution {
        switch result {
        case .outcome(.completed):
            return .complete
        case .outcome(.completedWithResult(let json)):
            // A result that cannot be kept is the handler's bug: retrying would make the same one.
            if let problem = JobOutcome.problem(withResult: json) { return .dead(FailureRecord(message: problem, kind: .permanent)) }
            return .completeWithResult(json: json)
        case .outcome(.snooze(let delay)):
            return .snooze(max(delay, .zero)).storable
        case .outcome(.cancel(let reason)):
            return .cancel(reason: reason).storable
        case .interrupted:
            return .release
        case .throttled(let key, let until, let message):
            return JobResolution.throttle(key: key ?? "", until: until, reason: message).storable
        case .failed(let message, let kind, let retryAfter):
            let failure = FailureRecord(message: message, kind: kind)
            switch kind {
            case .permanent, .badArgs, .unknownKind:
                return .dead(failure)
            case .error, .retryAfter, .timeout, .leaseExpired:
                guard attempt < maxAttempts else { return .dead(failure) }
                let delay = retryAfter ?? policy.backoff(attempt, random.nextUnit())
                return JobResolution.retry(after: delay, failure).storable
            }
        }
    }
}
