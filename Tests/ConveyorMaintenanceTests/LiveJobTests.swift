import ConveyorBuiltinKinds
import ConveyorCore
import ConveyorMaintenance
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import ServiceLifecycle
import Testing

@Suite("Leases of live workers (real time)")
struct LiveJobTests {
    @Test("a job that outlives its lease many times over is never rescued while its worker heartbeats")
    func longJobNotRescued() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            var registry = HandlerRegistry()
            registry.registerBuiltinKinds()
            // Lease 8 s, heartbeat every 0.25 s (31 may be late before the worker gives the job up: the
            // test shares two cores with the whole suite, whose CPU-heavy tests have held the cooperative
            // pool for more than 4 s), a rescue pass every 50 ms; the job runs 24 s, three leases.
            let results = WrittenResults()
            let configuration = Worker.Configuration(
                queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 2)]), pollInterval: .milliseconds(20),
                lease: .seconds(8), heartbeatInterval: .milliseconds(250), completionLinger: .milliseconds(2),
                onResultsWritten: results.callback)
            let worker = Worker(configuration: configuration, store: store, registry: registry, logger: TestDatabase.logger)
            let maintenance = Maintenance(
                configuration: .init(election: .init(holder: "test", ttl: .seconds(5), renewInterval: .seconds(1)), rescueInterval: .milliseconds(50)),
                store: store, logger: TestDatabase.logger)
            let id = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 24}"#)]).inserted[0]
            try await withRunningServices([maintenance, worker], logger: TestDatabase.logger) { _ in
                _ = try await results.wait(for: "the job finishes") { $0.contains { $0.id == id && $0.resolution.nextState.isFinal } }
            }
            let record = try await store.require(id)
            #expect(record.state == .completed)
            #expect(record.attempt == 1 && record.errors.isEmpty, "rescued while alive: \(record.errors)")
        }
    }
}
