public import Logging
public import ServiceLifecycle

/// Runs `services` in a `ServiceGroup` for the duration of `body`, then shuts them down gracefully and
/// waits for them — also when `body` throws, so a failing caller never leaves them running.
///
/// For in-process use (the benchmark, tests); processes use the signal-driven runner of the CLI.
/// `body` may trigger the shutdown itself through the group it is given.
public func withRunningServices<T: Sendable>(
    _ services: [any Service], logger: Logger, _ body: @Sendable (ServiceGroup) async throws -> T
) async throws -> T {
    let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        let result: T
        do {
            result = try await body(group)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        while let next = try await tasks.next() { _ = next }
        return result
    }
}
