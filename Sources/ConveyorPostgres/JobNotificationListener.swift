public import Logging
import PostgresNIO

/// Listens, on a connection of its own, for jobs becoming available (`conveyor_jobs_inserted`: inserts,
/// rescues, resumed queues) and for cancellation requests (`conveyor_jobs_cancel`), so idle workers
/// claim at once instead of waiting for their poll, and running jobs are cancelled within moments.
///
/// Reconnects with backoff when the connection drops; after every (re)connect it reports
/// `.available(nil)` and `.cancelRequested` ("anything may have happened"), since notifications sent
/// meanwhile were lost.
public struct JobNotificationListener: Sendable {
    /// What was notified.
    public enum Event: Sendable, Equatable {
        /// Jobs became available in these queues (`nil`: in any queue).
        case available([String]?)
        /// Some running jobs were asked to stop: check the ones you run.
        case cancelRequested
    }

    let url: DatabaseURL
    let logger: Logger

    /// Creates a listener for the database at `url`.
    public init(url: DatabaseURL, logger: Logger) {
        self.url = url
        self.logger = logger
    }

    /// Listens until the task is cancelled, calling `notify` for every notification.
    public func run(notify: @escaping @Sendable (Event) -> Void) async {
        var backoff = Duration.milliseconds(100)
        var quiet = logger
        quiet.logLevel = .critical
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: url.connectionConfiguration(), id: 1, logger: quiet)
                backoff = .milliseconds(100)
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await connection.listen(on: JobInsertMany.channel) { notifications in
                                notify(.available(nil))
                                for try await notification in notifications {
                                    // An empty payload (a resumed limit key) may concern any queue.
                                    let queues = notification.payload.split(separator: ",").map(String.init)
                                    notify(.available(queues.isEmpty ? nil : queues))
                                }
                            }
                        }
                        group.addTask {
                            try await connection.listen(on: JobCancel.channel) { notifications in
                                notify(.cancelRequested)
                                for try await _ in notifications { notify(.cancelRequested) }
                            }
                        }
                        // Either listen ending (the connection dropped) ends both.
                        try await group.next()
                        group.cancelAll()
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "listening for notifications failed; idle workers and cancellations fall back to polling and heartbeats until it reconnects",
                    metadata: ["error": "\(ConveyorStoreError.describe(error))", "retry_in": "\(backoff.readable)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}
