public import ConveyorCore

/// `conveyor.fail`: fails its first `failures` attempts (default 1), then completes; for exercising
/// retries and dead-lettering. With `"permanent": true` it fails permanently instead (dead at once).
///
/// Its retry policy is quick on purpose: 1 s doubling up to 30 s, 25 attempts.
/// Args: `{"failures": 2}`, `{"permanent": true}`.
public struct FailJob: JobHandler {
    /// The payload.
    public struct Args: Codable, Sendable {
        /// How many attempts fail before one succeeds. Default 1.
        public var failures: Int?
        /// Fail permanently on the first attempt. Default false.
        public var permanent: Bool?

        /// Creates args.
        public init(failures: Int? = nil, permanent: Bool? = nil) {
            self.failures = failures
            self.permanent = permanent
        }
    }

    /// The error each failing attempt throws.
    public struct Failure: Error, CustomStringConvertible {
        /// The failing attempt.
        public var attempt: Int
        public var description: String { "conveyor.fail: deliberate failure on attempt \(attempt)" }
    }

    public static let kind = "conveyor.fail"

    public var options: JobKindOptions {
        JobKindOptions(timeout: .seconds(60), retry: RetryPolicy(backoff: RetryPolicy.exponential(base: .seconds(1), cap: .seconds(30))))
    }

    /// Creates the handler.
    public init() {}

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        if args.permanent == true {
            throw JobFailure.permanent("conveyor.fail: deliberate permanent failure")
        }
        if context.attempt <= (args.failures ?? 1) {
            throw Failure(attempt: context.attempt)
        }
        return .completed
    }
}
