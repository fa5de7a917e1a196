import ConveyorCLI
import ConveyorCore

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

ConveyorCommand.bootstrapLogging()
await ConveyorCommand.start(kinds: { registry in registry.register(AbortJob()) })
