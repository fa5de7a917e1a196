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

/// `test.throttle`: `{"until": <Unix seconds>}`. Before that time it throws `throttled` (an upstream said
/// "wait until then" for the job's limit key); from then on it completes.
struct ThrottleJob: JobHandler {
    struct Args: Decodable, Sendable { var until: Double }
    static let kind = "test.throttle"

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        let until = Date(timeIntervalSince1970: args.until)
        guard Date() >= until else { throw JobFailure.throttled(key: nil, until: until, "upstream: too many calls, wait") }
        return .completed
    }
}

ConveyorCommand.bootstrapLogging()
await ConveyorCommand.start(kinds: { registry in
    registry.register(AbortJob())
    registry.register(ThrottleJob())
})
