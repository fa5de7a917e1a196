public import Logging
import PostgresNIO

/// Listens for job inserts (`LISTEN conveyor_jobs_inserted`) on a connection of its own and reports
/// the queues that received jobs, so idle workers claim at once instead of waiting for their poll.
///
/// Reconnects with backoff when the connection drops; after every (re)connect it reports `nil`
/// ("anything may have arrived"), since notifications sent meanwhile were lost.
public struct JobInsertListener: Sendable {
    let url: DatabaseURL
    let logger: Logger

    /// Creates a listener for the database at `url`.
    public init(url: DatabaseURL, logger: Logger) {
        self.url = url
        self.logger = logger
    }

    /// Listens until the task is cancelled; calls `notify` with the queues of each insert, or `nil`
    /// after a (re)connect.
    public func run(notify: @escaping @Sendable ([String]?) -> Void) async {
        var backoff = Duration.milliseconds(100)
        var quiet = logger
        quiet.logLevel = .critical
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: url.connectionConfiguration(), id: 1, logger: quiet)
                do {
                    try await connection.listen(on: JobInsertMany.channel) { notifications in
                        backoff = .milliseconds(100)
                        notify(nil)
                        for try await notification in notifications {
                            notify(notification.payload.split(separator: ",").map(String.init))
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "listening for new jobs failed; idle workers fall back to polling until it reconnects",
                    metadata: ["error": "\(ConveyorStoreError.describe(error))", "retry_in": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}
