import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// Reports progress a thousand times, then 42 % "encoding", then waits to be stopped; or, restarted,
/// reports 10 % "restarted" and waits to be stopped.
struct ProgressJob: JobHandler {
    struct Args: Decodable, Sendable {}
    static let kind = "test.progress"
    let restarted: Bool

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        if restarted {
            context.progress(0.1, "restarted")
        } else {
            for step in 0..<1000 { context.progress(Double(step) / 1000, "step \(step)") }
            context.progress(0.42, "encoding")
        }
        try await Task.sleep(for: .seconds(120))
        return .completed
    }
}

@Suite("Durable progress", .timeLimit(.minutes(2)))
struct JobProgressTests {
    @Test("reports are clamped to 0…1, NaN is ignored, notes are cut and made storable")
    func clamping() {
        let seen = Mutex<[JobProgress]>([])
        let context = JobContext(
            id: UUID(), kind: "k", queue: "q", attempt: 1, maxAttempts: 1, logger: Logger(label: "test"),
            progress: { report in seen.withLock { $0.append(report) } })
        context.progress(1.5)
        context.progress(-3, "a\u{0}b")
        context.progress(.nan, "ignored")
        context.progress(0.5, String(repeating: "é", count: 300))
        let reports = seen.withLock { $0 }
        #expect(reports.map(\.fraction) == [1, 0, 0.5])
        #expect(reports[1].note == "a\u{FFFD}b")
        #expect(reports[2].note.utf8.count <= JobProgress.maxNoteBytes)
    }

    @Test("a thousand reports cost a heartbeat or two, survive a restart, and a retry shows them until it reports anew")
    func durable() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let id = try await store.insert([NewJob(kind: ProgressJob.kind)]).inserted[0]
            func registry(restarted: Bool) -> HandlerRegistry {
                var registry = HandlerRegistry()
                registry.register(ProgressJob(restarted: restarted))
                return registry
            }
            var configuration = WorkerHarness.configuration(grace: .milliseconds(200))
            // No periodic heartbeat within the test: only pending progress makes one.
            configuration.heartbeatInterval = .seconds(60)
            let metrics = TestMetrics()
            let first = WorkerHarness.worker(store: store, registry: registry(restarted: false), configuration: configuration, metrics: metrics)
            try await WorkerHarness.run([first]) { _ in
                try await eventually("the last report is on the row") {
                    let job = try await store.require(id)
                    return job.progress?.note == "encoding" && abs((job.progress?.fraction ?? 0) - 0.42) < 1e-6
                }
            }
            let statements = try metrics.expectRecorder("conveyor_heartbeat_jobs").values.count
            #expect((1...3).contains(statements), "1,001 reports took \(statements) heartbeat statements")
            #expect((1...3).contains(try metrics.expectCounter("conveyor_progress_writes_total").totalValue))

            // Stopped by the shutdown: back to available, its progress kept, and shown in its JSON.
            let stopped = try await store.require(id)
            #expect(stopped.state == .available && stopped.progress?.note == "encoding" && stopped.progressAt != nil)
            #expect(stopped.json.contains(#""progress_note":"encoding""#) && stopped.json.contains(#""progress":0.4"#))

            // A new worker runs it again; the new attempt's report replaces the old one.
            var second = configuration
            second.heartbeatInterval = .milliseconds(100)
            let restarted = WorkerHarness.worker(store: store, registry: registry(restarted: true), configuration: second)
            try await WorkerHarness.run([restarted]) { _ in
                try await eventually("the new attempt's report replaces the old one") {
                    let job = try await store.require(id)
                    return job.state == .running && job.progress?.note == "restarted" && abs((job.progress?.fraction ?? 0) - 0.1) < 1e-6
                }
            }
        }
    }
}
