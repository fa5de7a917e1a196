/// What a handler returns when it did not fail: the closed set of successful endings.
///
/// Failures are thrown instead (any error retries per policy; see ``JobFailure`` for
/// permanent failure and retry-after).
public enum JobOutcome: Sendable, Equatable {
    /// The job is done.
    case completed
    /// Run the job again after `delay` without spending an attempt (e.g. a resource is not ready yet).
    case snooze(Duration)
    /// Stop the job for good; it ends `cancelled` with `reason` recorded.
    case cancel(reason: String)
}

/// Errors a handler throws to steer the retry logic beyond the default policy.
public enum JobFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The job cannot succeed however often it is retried: it goes to `dead` now.
    case permanent(String)
    /// Retry after exactly `delay` (e.g. an API's `Retry-After`), still spending an attempt.
    case retryAfter(Duration, String)

    public var description: String {
        switch self {
        case .permanent(let message): message
        case .retryAfter(_, let message): message
        }
    }
}
