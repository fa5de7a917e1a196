import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

/// examples/custom-conveyor: a service's own `conveyor` with its kinds and schedules.
@Suite("Your own conveyor (examples/custom-conveyor)", .timeLimit(.minutes(2)))
struct CustomConveyorTests {
    static var binary: URL { ConveyorProcess.executable.deletingLastPathComponent().appendingPathComponent("custom-conveyor") }

    @Test("its worker runs its own kind, pushed through Redis, with the kind's own max attempts; its schedule is listed")
    func ownKindAndSchedule() async throws {
        try await TestDatabase.withFresh(migrate: false) { client, url in
            let env = [
                "DATABASE_URL": url, "REDIS_URL": try TestRedis.url(), "CONVEYOR_REDIS_NAMESPACE": TestRedis.namespace(),
                "CONVEYOR_LOG_LEVEL": "info",
            ]
            let folder = FileManager.default.temporaryDirectory
            let migrated = try await ConveyorProcess.run(executable: Self.binary, ["migrate"], environment: env, in: folder)
            #expect(migrated.status == 0, "\(migrated.stderr)")

            let worker = try RunningProcess(["worker", "--grace-period", "5"], environment: env, executable: Self.binary)
            await worker.waitFor("ingester started")
            let pushed = try await ConveyorProcess.run(
                executable: Self.binary, ["enqueue", "shop.send_receipt", "--args", #"{"orderID": 42}"#], environment: env, in: folder)
            #expect(pushed.status == 0, "\(pushed.stderr)")
            let id = try #require(UUID(uuidString: pushed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            await worker.waitFor("receipt sent")
            let store = PostgresJobStore(client: client)
            try await eventually("the job is completed") { try await store.require(id).state == .completed }
            #expect(try await store.require(id).maxAttempts == 7, "the kind's default, applied at ingest")
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)

            let schedules = try await ConveyorProcess.run(executable: Self.binary, ["schedules"], environment: env, in: folder)
            #expect(schedules.status == 0, "\(schedules.stderr)")
            #expect(schedules.stdout.contains("shop.receipts-nightly") && schedules.stdout.contains("0 3 * * *"), "\(schedules.stdout)")
            #expect(schedules.stdout.contains("conveyor.canary"), "the stock schedules stay")
        }
    }
}
