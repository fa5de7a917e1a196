import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

/// The Conversions API kind in the stock `conveyor` binary, three worker processes, the sandbox as Meta
/// in a process of its own: a throttled pixel holds every worker off.
@Suite("Conversions API throttling across processes", .serialized, .timeLimit(.minutes(3)))
struct CAPIThrottleProcessTests {
    static let token = "EAAB-process-test-token-never-logged"
    static let pixel = "4242"

    /// `conveyor-sandbox --port 0`, and its base URL.
    static func sandbox() async throws -> (RunningProcess, String) {
        let sandbox = try RunningProcess(
            ["--port", "0"], environment: ["SANDBOX_META_TOKEN": token],
            executable: ConveyorProcess.executable.deletingLastPathComponent().appendingPathComponent("conveyor-sandbox"))
        await sandbox.waitFor("listening on http://127.0.0.1:")
        let line = try #require(sandbox.output.split(separator: "\n").first { $0.contains("listening on http") })
        let base = try #require(line.split(separator: " ").last.map(String.init))
        return (sandbox, base)
    }

    /// A control call to the sandbox (`/_sandbox/...`), through curl.
    static func control(_ method: String, _ url: String, body: String? = nil) async throws -> String {
        var arguments = ["curl", "-sS", "--fail", "-X", method, url]
        if let body { arguments += ["-H", "Content-Type: application/json", "--data", body] }
        let result = try await ConveyorProcess.tool(arguments, environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return result.stdout
    }

    static func conversion(_ id: Int) -> NewJob {
        let args = #"{"event":{"event_name":"Purchase","event_time":\#(Int(Date().timeIntervalSince1970)),"event_id":"p\#(id)","action_source":"system_generated","user_data":{"em":["\#(String(repeating: "a", count: 64))"]},"custom_data":{"value":10,"currency":"USD"}}}"#
        return NewJob(kind: "meta.capi_event", args: args, limitKey: "meta-pixel:\(pixel)")
    }

    @Test("Meta throttles the pixel once: the key pauses on all three workers, none of them sends again until it is resumed, no attempt is spent, none is lost")
    func throttledPixelHoldsEveryWorker() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let (sandbox, base) = try await Self.sandbox()
            _ = try await Self.control("POST", "\(base)/_sandbox/faults", body: #"{"target":"capi","mode":"throttle","code":80001,"regain_minutes":30,"count":1}"#)
            var env = [
                "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_POLL_INTERVAL": "0.2", "CONVEYOR_CONCURRENCY": "50",
                "META_GRAPH_BASE_URL": base, "META_ACCESS_TOKEN": Self.token, "META_PIXEL_ID": Self.pixel,
            ]
            var workers: [RunningProcess] = []
            for index in 0..<3 {
                env["CONVEYOR_WORKER_ID"] = "w\(index)"
                let worker = try RunningProcess(["worker", "--no-ingest", "--grace-period", "5"], environment: env)
                await worker.waitFor("worker started")
                workers.append(worker)
            }
            let first = try await store.insert([Self.conversion(0)]).inserted
            try await eventually("the pixel paused") { try await !store.keyPauses().isEmpty }
            let pause = try #require(try await store.keyPauses().first)
            #expect(pause.key == "meta-pixel:\(Self.pixel)")
            #expect(abs(pause.until.timeIntervalSinceNow - 1800) < 60, "Meta's estimate, 30 minutes: \(pause.until)")

            // More conversions for the paused pixel, then work every worker must pass them by to reach.
            let held = try await store.insert((1..<40).map { Self.conversion($0) }).inserted
            _ = try await store.insert((0..<60).map { _ in NewJob(kind: "conveyor.noop") })
            try await eventually("the later work completed") {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'conveyor.noop' AND state = 'completed'") == 60
            }
            #expect(
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'meta.capi_event' AND (state <> 'available' OR attempt <> 0)") == 0,
                "no worker started a conversion of the paused pixel")
            let requests = try await Self.control("GET", "\(base)/_sandbox/capi/requests")
            #expect(requests.components(separatedBy: #""pixel""#).count - 1 == 1, "Meta saw the throttled call only: \(requests)")

            let resumed = try await ConveyorProcess.run(["limits", "resume", "meta-pixel:\(Self.pixel)"], environment: ["DATABASE_URL": url])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            try await eventually("every conversion sent") {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'meta.capi_event' AND state = 'completed'") == 40
            }
            for id in first + held {
                let job = try await store.require(id)
                #expect(job.attempt == 1 && job.errors.isEmpty, "the throttle spent no attempt: \(job.attempt) \(job.errors)")
            }
            let stats = try await Self.control("GET", "\(base)/_sandbox/stats")
            #expect(stats.contains(#""capi_events_accepted":40"#), "\(stats)")
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers {
                #expect(await worker.exitStatus() == 0)
                #expect(!worker.output.contains(Self.token), "the token reached a worker's log")
            }
            sandbox.signal(SIGTERM)
            _ = await sandbox.exitStatus()
        }
    }
}
