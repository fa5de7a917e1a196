import ConveyorBuiltinKinds
import ConveyorCore
import Foundation
import Logging
import Testing

@Suite("Built-in kinds")
struct BuiltinKindsTests {
    private func context(attempt: Int) -> JobContext {
        JobContext(id: UUID(), kind: "k", queue: "default", attempt: attempt, maxAttempts: 25, logger: Logger(label: "test"))
    }

    @Test("the registry knows noop, sleep and fail")
    func registered() {
        var registry = HandlerRegistry()
        registry.registerBuiltinKinds()
        #expect(registry.kinds == ["conveyor.fail", "conveyor.noop", "conveyor.sleep"])
    }

    @Test("conveyor.fail fails its first N attempts, then completes")
    func failThenSucceed() async throws {
        let job = FailJob()
        let args = FailJob.Args(failures: 2)
        await #expect(throws: FailJob.Failure.self) { try await job.run(args, context: context(attempt: 1)) }
        await #expect(throws: FailJob.Failure.self) { try await job.run(args, context: context(attempt: 2)) }
        #expect(try await job.run(args, context: context(attempt: 3)) == .completed)
    }

    @Test("conveyor.fail with permanent fails permanently")
    func permanent() async {
        await #expect(throws: JobFailure.permanent("conveyor.fail: deliberate permanent failure")) {
            try await FailJob().run(FailJob.Args(permanent: true), context: context(attempt: 1))
        }
    }

    @Test("conveyor.sleep rejects impossible durations permanently and completes short ones")
    func sleepJob() async throws {
        await #expect(throws: JobFailure.self) { try await SleepJob().run(.init(seconds: -1), context: context(attempt: 1)) }
        #expect(try await SleepJob().run(.init(seconds: 0), context: context(attempt: 1)) == .completed)
    }

    @Test("conveyor.sleep stops when cancelled")
    func sleepCancels() async {
        let task = Task { try await SleepJob().run(.init(seconds: 3600), context: context(attempt: 1)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
