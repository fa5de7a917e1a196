/// Why an attempt failed, recorded with every entry of a job's error history.
public enum FailureKind: String, Sendable, Codable, Hashable, CaseIterable {
    /// The handler threw an error.
    case error
    /// The handler threw ``JobFailure/permanent(_:)``.
    case permanent
    /// The handler threw ``JobFailure/retryAfter(_:_:)``.
    case retryAfter = "retry_after"
    /// The handler ran past its kind's timeout and was cancelled.
    case timeout
    /// The arguments did not decode into the handler's payload type.
    case badArgs = "bad_args"
    /// No handler is registered for the job's kind.
    case unknownKind = "unknown_kind"
    /// The worker holding the job stopped renewing its lease.
    case leaseExpired = "lease_expired"
}
