/// How one attempt ended, as the executor observed it.
public enum AttemptResult: Sendable, Equatable {
    /// The handler returned.
    case outcome(JobOutcome)
    /// The attempt failed; `retryAfter` overrides the policy's backoff when set.
    case failed(message: String, kind: FailureKind, retryAfter: Duration? = nil)
    /// The worker stopped the attempt on shutdown: the job goes back without spending the attempt.
    case interrupted

    /// Classifies an error thrown by a handler.
    public init(error: any Error) {
        switch error {
        case JobFailure.permanent(let message):
            self = .failed(message: message, kind: .permanent)
        case JobFailure.retryAfter(let delay, let message):
            self = .failed(message: message, kind: .retryAfter, retryAfter: delay)
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
    /// The message, safe to show to operators.
    public var message: String
    /// The category.
    public var kind: FailureKind

    /// Creates a failure record.
    public init(message: String, kind: FailureKind) {
        self.message = message
        self.kind = kind
    }
}

/// The next state of a job after an attempt: the pure core of the lifecycle (see `docs/lifecycle.md`).
public enum JobResolution: Sendable, Equatable {
    /// `running → completed`.
    case complete
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

    /// The state the job ends up in.
    public var nextState: JobState {
        switch self {
        case .complete: .completed
        case .retry, .snooze, .release: .available
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
        case .outcome(.snooze(let delay)):
            return .snooze(max(delay, .zero))
        case .outcome(.cancel(let reason)):
            return .cancel(reason: reason)
        case .interrupted:
            return .release
        case .failed(let message, let kind, let retryAfter):
            let failure = FailureRecord(message: message, kind: kind)
            switch kind {
            case .permanent, .badArgs, .unknownKind:
                return .dead(failure)
            case .error, .retryAfter, .timeout, .leaseExpired:
                guard attempt < maxAttempts else { return .dead(failure) }
                let delay = retryAfter ?? policy.backoff(attempt, random.nextUnit())
                return .retry(after: max(delay, .zero), failure)
            }
        }
    }
}
