import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// Runs workers in a `ServiceGroup` for the duration of a closure, like the `conveyor worker` process does.
enum WorkerHarness {
    static func configuration(queues: [QueueConfiguration.Queue] = [.init(name: "default", concurrency: 10)], grace: Duration = .seconds(5)) -> Worker.Configuration {
        Worker.Configuration(
            queues: QueueConfiguration(queues: queues), pollInterval: .milliseconds(20), gracePeriod: grace,
            completionLinger: .milliseconds(2))
    }

    /// Starts `workers`, runs `body`, then shuts them down gracefully and waits for them to return.
    /// `body` may trigger the shutdown itself through the given group.
    static func run<T: Sendable>(
        _ workers: [Worker], _ body: @Sendable (ServiceGroup) async throws -> T
    ) async throws -> T {
        try await withRunningServices(workers, logger: TestDatabase.logger, body)
    }

    static func worker(
        store: PostgresJobStore, registry: HandlerRegistry, configuration: Worker.Configuration = configuration(),
        random: any RandomSource = FixedRandomSource(0.5), metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger = TestDatabase.logger
    ) -> Worker {
        Worker(configuration: configuration, store: store, registry: registry, random: random, metrics: metrics, logger: logger)
    }
}
