import ConveyorBuiltinKinds
import ConveyorCore

/// The job kinds this binary ships, registered once for the worker and the enqueue defaults, and the
/// schedules they declare.
enum ConveyorKinds {
    /// Kinds an embedding executable adds (``ConveyorCommand/start(arguments:kinds:)``), for the
    /// commands run inside that call.
    @TaskLocal static var extra: @Sendable (inout HandlerRegistry) -> Void = { _ in }
    /// Schedules an embedding executable adds.
    @TaskLocal static var extraSchedules: [Schedule] = []

    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.registerBuiltinKinds()
        extra(&registry)
        return registry
    }

    /// The schedules declared in code (overridable with `CONVEYOR_SCHEDULES`). The platform's kinds add
    /// theirs here (the retraining check: daily at 02:00 UTC).
    static func schedules() -> [Schedule] {
        extraSchedules + [
            // A canary through the whole pipeline: if its jobs stop completing every five minutes,
            // something between the scheduler and the workers is broken.
            try! Schedule(name: "conveyor.canary", cron: "*/5 * * * *", kind: "conveyor.noop", args: #"{"canary":true}"#),
        ]
    }
}
