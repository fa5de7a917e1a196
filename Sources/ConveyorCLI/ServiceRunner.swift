import ConveyorCore
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Runs services in a `ServiceGroup` (started in order, shut down in reverse) with DESIGN §5's signals:
/// the first SIGTERM/SIGINT begins a graceful shutdown, a second one exits at once (status 128 + the
/// signal's number: 143 for SIGTERM, 130 for SIGINT). With a `shutdownDeadline`, a graceful shutdown
/// that has not finished that long after the first signal exits with status 1.
enum ServiceRunner {
    static func run(_ services: [any Service], logger: Logger, shutdownDeadline: Duration? = nil) async throws {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }, logger: logger))
        let (shutdownStarts, shutdownStarted) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            if let shutdownDeadline {
                tasks.addTask {
                    for await _ in shutdownStarts {
                        try await Task.sleep(for: shutdownDeadline)
                        logger.error(
                            "shutdown did not finish within its deadline: exiting now; leases return the running jobs",
                            metadata: ["deadline": "\(shutdownDeadline.readable)"])
                        exit(1)
                    }
                }
            }
            tasks.addTask {
                var received = 0
                for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    received += 1
                    if received == 1 {
                        logger.notice("\(signal) received: shutting down gracefully (send it again to exit at once)")
                        await group.triggerGracefulShutdown()
                        shutdownStarted.yield()
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
