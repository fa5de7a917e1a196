import ConveyorHTTPClient
import ConveyorPostgres
import Logging
import ServiceLifecycle

/// Publishes this worker's circuit breakers (``CircuitBoard``) to `conveyor_circuits` every 5 s, for
/// the dashboard; a failed write is logged and tried again at the next tick.
struct CircuitPublisher: Service {
    let store: PostgresJobStore
    let worker: String
    let logger: Logger
    var interval: Duration = .seconds(5)

    func run() async throws {
        // A shutdown cancels the sleep: stopping is this service's normal end, not a failure.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let entries = CircuitBoard.snapshot()
                do {
                    try await store.publishCircuits(
                        worker: worker, entries.map { ($0.upstream, $0.state.rawValue, $0.since, $0.openUntil) })
                } catch {
                    logger.debug("publishing circuit breakers failed", metadata: ["error": "\(ConveyorStoreError.describe(error))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
