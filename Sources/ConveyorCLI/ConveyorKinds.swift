import ConveyorBuiltinKinds
import ConveyorCore

/// The job kinds this binary ships, registered once for the worker and the enqueue defaults.
enum ConveyorKinds {
    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.registerBuiltinKinds()
        return registry
    }
}
