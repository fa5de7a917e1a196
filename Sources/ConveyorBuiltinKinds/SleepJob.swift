public import ConveyorCore

/// `conveyor.sleep`: sleeps for `seconds` (default 1), honouring cancellation, then completes.
///
/// Args: `{"seconds": 2.5}`.
public struct SleepJob: JobHandler {
    /// The payload.
    public struct Args: Codable, Sendable {
        /// How long to sleep, in seconds (0–86,400). Default 1.
        public var seconds: Double?

        /// Creates args.
        public init(seconds: Double?) { self.seconds = seconds }
    }

    public static let kind = "conveyor.sleep"

    public let options: JobKindOptions

    /// Creates the handler with the given options (default timeout 15 minutes).
    public init(options: JobKindOptions = JobKindOptions()) {
        self.options = options
    }

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        let seconds = args.seconds ?? 1
        guard (0...86_400).contains(seconds) else {
            throw JobFailure.permanent("seconds must be between 0 and 86400, got \(seconds)")
        }
        try await Task.sleep(for: .seconds(seconds))
        return .completed
    }
}
