public import ConveyorCore

/// `conveyor.noop`: does nothing and completes; for benchmarks and smoke tests. Args are ignored.
public struct NoopJob: JobHandler {
    /// Accepts any object.
    public struct Args: Decodable, Sendable {}

    public static let kind = "conveyor.noop"

    /// Creates the handler.
    public init() {}

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome { .completed }
}
