import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import MetricsTestKit
import Testing

/// A handler that completes with a result: typed, raw JSON, too large, or not JSON.
struct ResultJob: JobHandler {
    struct Args: Decodable, Sendable { var mode: String }
    struct Status: Encodable { var path: String; var frames: Int; var done: Bool }
    static let kind = "test.result"

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        switch args.mode {
        case "typed": return try .completed(result: Status(path: "/renders/a/b.mp4", frames: 240, done: true))
        case "scalar": return .completedWithResult(json: "42")
        case "huge": return .completedWithResult(json: "\"" + String(repeating: "x", count: JobOutcome.maxResultBytes) + "\"")
        case "garbage": return .completedWithResult(json: "<html>502 Bad Gateway</html>")
        case "nul": return .completedWithResult(json: #"{"note":"a\u0000b"}"#)
        default: return .completed
        }
    }
}

@Suite("Job results", .timeLimit(.minutes(2)))
struct JobResultsTests {
    @Test("a result outside what can be kept fails the job for good, saying why; a valid one is kept as given")
    func resolution() {
        let random = FixedRandomSource(0.5)
        func resolve(_ json: String) -> JobResolution {
            JobResolution.resolve(.outcome(.completedWithResult(json: json)), attempt: 1, maxAttempts: 5, policy: .standard, random: random)
        }
        #expect(resolve(#"{"a":[1,2]}"#) == .completeWithResult(json: #"{"a":[1,2]}"#))
        #expect(resolve(#""ok""#).nextState == .completed)
        let limit = String(repeating: "x", count: JobOutcome.maxResultBytes - 2)
        #expect(resolve("\"\(limit)\"") == .completeWithResult(json: "\"\(limit)\""), "exactly 256 KiB is kept")
        guard case .dead(let huge) = resolve("\"\(limit)x\"") else { Issue.record("an oversized result must fail"); return }
        #expect(huge.kind == .permanent && huge.message == "result is 262145 bytes, at most 262144 allowed")
        guard case .dead(let garbage) = resolve("<html>") else { Issue.record("non-JSON must fail"); return }
        #expect(garbage.message.hasPrefix("result is not valid JSON"))
        guard case .dead(let nul) = resolve(#"{"a":"\u0000"}"#) else { Issue.record("a NUL escape must fail"); return }
        #expect(nul.message.hasPrefix("result cannot be stored"))
    }

    @Test("results are written by the worker, read back by the store and in the job's JSON; bad ones are recorded failures")
    func roundTrip() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let modes = ["typed", "scalar", "huge", "garbage", "nul", "plain"]
            let ids = try await store.insert(modes.map { NewJob(kind: ResultJob.kind, args: #"{"mode":"\#($0)"}"#, maxAttempts: 3) }).inserted
            var registry = HandlerRegistry()
            registry.register(ResultJob())
            let results = WrittenResults()
            var configuration = WorkerHarness.configuration()
            configuration.onResultsWritten = results.callback
            let metrics = TestMetrics()
            let worker = WorkerHarness.worker(store: store, registry: registry, configuration: configuration, metrics: metrics)
            _ = try await WorkerHarness.run([worker]) { _ in
                try await results.wait(for: "every result written") { $0.count == modes.count }
            }
            let jobs = Dictionary(uniqueKeysWithValues: zip(modes, try await ids.asyncMap { try await store.require($0) }))
            #expect(jobs["typed"]?.state == .completed)
            #expect(jobs["typed"]?.result == #"{"done": true, "path": "/renders/a/b.mp4", "frames": 240}"#, "jsonb's own text form")
            #expect(jobs["typed"]?.json.contains(#""result":{"done":true,"frames":240,"path":"/renders/a/b.mp4"}"#) == true)
            #expect(jobs["scalar"]?.result == "42" && jobs["scalar"]?.json.contains(#""result":42"#) == true)
            #expect(jobs["plain"]?.state == .completed && jobs["plain"]?.result == nil && jobs["plain"]?.json.contains(#""result":"#) == false)
            for mode in ["huge", "garbage", "nul"] {
                let job = try #require(jobs[mode])
                #expect(job.state == .dead && job.result == nil && job.attempt == 1, "\(mode)")
                #expect(job.errors.map(\.kind) == [.permanent], "\(mode)")
            }
            #expect(jobs["huge"]?.errors.first?.message == "result is 262146 bytes, at most 262144 allowed")
            // One size per kept result.
            #expect(try metrics.expectRecorder("conveyor_job_result_bytes", [("kind", ResultJob.kind)]).values.count == 2)
        }
    }
}
