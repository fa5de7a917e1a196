import ConveyorCLI
import ConveyorCore
import Foundation

/// `test.abort`: crashes its process (a trap, as a force unwrap or `fatalError` in a handler would).
/// Proves that a poison job is dead-lettered after a few lost workers instead of killing the fleet.
struct AbortJob: JobHandler {
    struct Args: Decodable, Sendable {}
    static let kind = "test.abort"

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        context.logger.warning("test.abort: crashing this process on purpose")
        fatalError("test.abort crashed its worker on purpose")
    }
}

/// `test.throttle`: `{"marker": "/path", "pause_seconds": S}`. The first run (no file at `marker` yet)
/// creates the file and throws `throttled` for S seconds, as an upstream saying "too many calls for this
/// account, wait" would; a later run completes. The file is shared by every worker of the machine.
struct ThrottleJob: JobHandler {
    struct Args: Decodable, Sendable {
        var marker: String
        var pause_seconds: Double
    }
    static let kind = "test.throttle"

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        if !FileManager.default.fileExists(atPath: args.marker) {
            _ = FileManager.default.createFile(atPath: args.marker, contents: nil)
            throw JobFailure.throttled(key: nil, until: Date().addingTimeInterval(args.pause_seconds), "upstream: too many calls, wait")
        }
        return .completed
    }
}

ConveyorCommand.bootstrapLogging()
await ConveyorCommand.start(kinds: { registry in
    registry.register(AbortJob())
    registry.register(ThrottleJob())
})
