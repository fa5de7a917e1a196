import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Runs services in a `ServiceGroup` (started in order, shut down in reverse) with DESIGN §5's signals:
/// the first SIGTERM/SIGINT begins a graceful shutdown, a second one exits at once.
enum ServiceRunner {
    static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                var received = 0
                for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    received += 1
                    if received == 1 {
                        logger.notice("\(signal) received: shutting down gracefully (send it again to exit at once)")
                        await group.triggerGracefulShutdown()
                    } else {
                        logger.warning("\(signal) received again: exiting now; leases return the running jobs")
                        exit(128 + signal.rawValue)
                    }
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}
