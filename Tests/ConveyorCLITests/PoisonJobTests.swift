import ConveyorCore
import ConveyorTestSupport
import Foundation
import Testing

/// A handler that crashes its process (a trap) must not crash-loop the fleet.
@Suite("Poison jobs across processes")
struct PoisonJobTests {
    @Test("a job whose handler aborts its worker kills three workers at most, then is dead-lettered with 'worker lost' in its history")
    func abortingHandler() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let poison = try await store.insert([NewJob(kind: "test.abort", maxAttempts: 25)]).inserted[0]
            var env = CrashSafetyTests.environment(url: url, id: "w")
            env["CONVEYOR_RESCUE_DELAY"] = "0"
            // A lease with room to spare on a loaded machine: the victim must crash holding it, not
            // lose it first (its own leader would rescue it while the handler waits to be scheduled).
            env["CONVEYOR_LEASE"] = "4"
            // The trap is deliberate: no symbolicated backtrace (about 10 s each in a debug build).
            env["SWIFT_BACKTRACE"] = "enable=no"
            var statuses: [Int32] = []
            for round in 1...3 {
                env["CONVEYOR_WORKER_ID"] = "victim-\(round)"
                let worker = try RunningProcess(["worker", "--no-ingest"], environment: env, executable: ConveyorProcess.testWorker)
                statuses.append(await worker.exitStatus())
                #expect(worker.output.contains("crashing this process on purpose"), "round \(round): \(worker.output.suffix(2000))")
                let job = try await store.require(poison)
                #expect(job.state == .running && job.attempt == round && job.lockedBy == "victim-\(round)",
                        "round \(round): \(job.state) at attempt \(job.attempt) by \(job.lockedBy ?? "nobody"); \(job.errors.map(\.message))")
            }
            #expect(statuses.allSatisfy { $0 != 0 }, "each worker died: \(statuses)")

            // The next worker rescues it a third time and dead-letters it instead of running it again,
            // and keeps running itself.
            env["CONVEYOR_WORKER_ID"] = "survivor"
            let survivor = try RunningProcess(["worker", "--no-ingest"], environment: env, executable: ConveyorProcess.testWorker)
            try await eventually("the poison job is dead") { try await store.require(poison).state == .dead }
            let noop = try await store.insert([NewJob(kind: "conveyor.noop")]).inserted[0]
            try await eventually("the survivor still runs jobs") { try await store.require(noop).state == .completed }
            survivor.signal(SIGTERM)
            #expect(await survivor.exitStatus() == 0)

            let dead = try await store.require(poison)
            #expect(dead.attempt == 3)
            #expect(dead.errors.map(\.kind) == [.leaseExpired, .leaseExpired, .leaseExpired])
            #expect(dead.errors.map(\.message).allSatisfy { $0.contains("worker lost") })
            #expect(dead.errors.last?.message.contains("victim-3") == true)
        }
    }
}
