public import Foundation

/// One entry of a job's error history: what went wrong on which attempt, and when.
public struct JobAttemptError: Sendable, Codable, Equatable {
    /// The attempt that failed (1-based).
    public var attempt: Int
    /// When the failure was recorded.
    public var at: Date
    /// The error message, safe to show to operators.
    public var message: String
    /// The category of the failure.
    public var kind: FailureKind

    /// Creates a history entry.
    public init(attempt: Int, at: Date, message: String, kind: FailureKind) {
        self.attempt = attempt
        self.at = at
        self.message = message
        self.kind = kind
    }
}
