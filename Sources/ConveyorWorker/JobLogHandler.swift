import Logging

/// Adds a job's metadata (`job_id`, `kind`, `attempt`, `queue`) to every message, at log time.
///
/// Setting metadata on a `Logger` makes handlers such as `StreamLogHandler` re-render their metadata on
/// every assignment; doing that four times per job was measurable in the no-op benchmark. This wrapper
/// builds nothing until a message is actually logged.
struct JobLogHandler: LogHandler {
    var base: any LogHandler
    let job: @Sendable () -> Logger.Metadata

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata.merging(job()) { _, new in new } }
        set { base.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { job()[key] ?? base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.metadata = job().merging(event.metadata ?? [:]) { _, new in new }
        base.log(event: event)
    }
}
