public import ConveyorCore

extension HandlerRegistry {
    /// Registers the built-in kinds: `conveyor.noop`, `conveyor.sleep` and `conveyor.fail`.
    public mutating func registerBuiltinKinds() {
        register(NoopJob())
        register(SleepJob())
        register(FailJob())
    }
}
