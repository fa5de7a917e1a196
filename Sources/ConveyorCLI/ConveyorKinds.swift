import ConveyorBuiltinKinds
import ConveyorCore

/// The job kinds this binary ships, registered once for the worker and the enqueue defaults, and the
/// schedules they declare.
enum ConveyorKinds {
    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.registerBuiltinKinds()
        return registry
    }

    /// The schedules declared in code (overridable with `CONVEYOR_SCHEDULES`). The platform's kinds add
    /// theirs here (the retraining check: daily at 02:00 UTC).
    static func schedules() -> [Schedule] {
        [
            // A canary through the whole pipeline: if its jobs stop completing every five minutes,
            // something between the scheduler and the workers is broken.
            try! Schedule(name: "conveyor.canary", cron: "*/5 * * * *", kind: "conveyor.noop", args: #"{"canary":true}"#),
        ]
    }
}
