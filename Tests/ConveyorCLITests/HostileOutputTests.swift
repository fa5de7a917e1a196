import ConveyorCore
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

/// What producers and upstreams control reaches an operator's terminal escaped; dates out of range are
/// refused at the command line; a worker whose database disappears still stops.
@Suite("Hostile values at the command line", .timeLimit(.minutes(2)))
struct HostileOutputTests {
    static let escape = "\u{1B}]0;pwned\u{07}\u{1B}[2J"

    @Test("jobs show and rejected show escape control characters; --json stays exact")
    func terminalEscapes() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let job = NewJob(kind: "conveyor.noop", args: #"{"note":"\u001b]0;x\u0007"}"#, uniqueKey: "key\(Self.escape)", tags: ["t\(Self.escape)"])
            let id = try await store.insert([job]).inserted[0]
            let claimed = try await store.claim(queue: "default", limit: 1, worker: "w\u{9B}31m", lease: .seconds(30))
            _ = try await store.resolve([(id, claimed[0].attempt, .retry(after: .seconds(60), FailureRecord(message: "upstream: \(Self.escape)", kind: .error)))])
            _ = try await store.ingest(
                jobs: [], rejected: [Rejection(id: UUID(), payload: Data("bad \(Self.escape) \u{202E}txt".utf8), reason: "envelope is not valid JSON", source: "s")],
                maxAttempts: { _ in 25 })
            let env = ["DATABASE_URL": url]

            let shown = try await ConveyorProcess.run(["jobs", "show", id.uuidString], environment: env)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(!shown.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })
            #expect(shown.stdout.contains(#"unique key:   key\e]0;pwned\x07\e[2J"#), "\(shown.stdout)")
            #expect(shown.stdout.contains(#"upstream: \e]0;pwned"#))
            let listed = try await ConveyorProcess.run(["jobs", "list"], environment: env)
            #expect(!listed.stdout.unicodeScalars.contains { $0.value == 0x1B }, "\(listed.stdout)")
            let json = try await ConveyorProcess.run(["jobs", "show", id.uuidString, "--json"], environment: env)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(object?["unique_key"] as? String == "key\(Self.escape)", "JSON output is exact")

            // A result prints escaped in the detail view and exact in --json, read by a new process.
            let done = try await store.insert([NewJob(kind: "conveyor.noop", queue: "results")]).inserted[0]
            let running = try await store.claim(queue: "results", limit: 1, worker: "w", lease: .seconds(30))
            _ = try await store.record([(done, running[0].attempt, .completeWithResult(json: #"{"note":"\u001b[2Jdone","frames":240}"#))])
            let result = try await ConveyorProcess.run(["jobs", "show", done.uuidString], environment: env)
            #expect(result.stdout.contains(#"result:       {"note": "\u001b[2Jdone", "frames": 240}"#), "\(result.stdout)")
            #expect(!result.stdout.unicodeScalars.contains { $0.value == 0x1B })
            let resultJSON = try await ConveyorProcess.run(["jobs", "show", done.uuidString, "--json"], environment: env)
            let resultObject = try JSONSerialization.jsonObject(with: Data(resultJSON.stdout.utf8)) as? [String: Any]
            #expect((resultObject?["result"] as? [String: Any])?["note"] as? String == "\u{1B}[2Jdone")

            // Progress of a running job, escaped in the detail view.
            let busy = try await store.insert([NewJob(kind: "conveyor.noop", queue: "progress")]).inserted[0]
            let held = try await store.claim(queue: "progress", limit: 1, worker: "w", lease: .seconds(30))
            _ = try await store.heartbeat([(busy, held[0].attempt)], lease: .seconds(30), progress: [busy: JobProgress(fraction: 0.425, note: "enc\u{1B}[2Joding")])
            let progress = try await ConveyorProcess.run(["jobs", "show", busy.uuidString], environment: env)
            #expect(progress.stdout.contains(#"progress:     42.5 % enc\e[2Joding (at "#), "\(progress.stdout)")

            let rejected = try await store.rejectedEnvelopes()[0]
            let show = try await ConveyorProcess.run(["rejected", "show", rejected.id.uuidString], environment: env)
            #expect(show.status == 0, "\(show.stderr)")
            #expect(!show.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x202E })
            #expect(show.stdout.contains(#"bad \e]0;pwned\x07\e[2J \u{202e}txt"#), "\(show.stdout)")
            #expect(show.stdout.contains("sha256:    "))
            let raw = try await ConveyorProcess.run(["rejected", "show", rejected.id.uuidString, "--json"], environment: env)
            let envelope = try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as? [String: Any]
            #expect(envelope?["payload"] as? String == "bad \(Self.escape) \u{202E}txt")
        }
    }

    @Test("a run-at past year 9999 is refused at the command line, naming the flag")
    func farFutureRunAt() async throws {
        let result = try await ConveyorProcess.run(
            ["enqueue", "--direct", "conveyor.noop", "--run-at", "999999-01-01T00:00:00Z"], environment: ["DATABASE_URL": "postgres://u@127.0.0.1:1/db"])
        #expect(result.status == 78)
        #expect(result.stderr.hasPrefix("conveyor: --run-at: "), "\(result.stderr)")
    }

    @Test("a worker whose PostgreSQL disappears after SIGTERM exits within the grace period plus the flush deadline, non-zero")
    func shutdownWithoutDatabase() async throws {
        let serverURL = try TestDatabase.serverURL()
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            _ = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 2}"#)])
            var env = CrashSafetyTests.environment(url: url, id: "cut-off")
            env["CONVEYOR_LOG_LEVEL"] = "debug"
            env["CONVEYOR_LEASE"] = "30"
            env["CONVEYOR_GRACE_PERIOD"] = "3"
            env["CONVEYOR_FLUSH_DEADLINE"] = "1"
            let worker = try RunningProcess(["worker", "--no-ingest"], environment: env)
            await worker.waitFor("job started")
            // The database goes away while the job runs: no new connection is let in, the worker's are cut.
            let name = String(url.split(separator: "/").last ?? "")
            try await TestDatabase.withClient(url: serverURL) { admin in
                _ = try await admin.query("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS false", logger: TestDatabase.logger).collect()
                _ = try await admin.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(name) AND pid <> pg_backend_pid()",
                    logger: TestDatabase.logger
                ).collect()
            }
            worker.signal(SIGTERM)
            let started = ContinuousClock.now
            let status = await worker.exitStatus()
            let took = ContinuousClock.now - started
            #expect(status != 0, "\(worker.output.suffix(3000))")
            // Grace 3 s + flush deadline 1 s, then at most the 5 s backstop: 9 s. Without the deadlines it
            // would retry for ever; the bound has room for a loaded two-core CI machine (12.8 s once).
            #expect(took < .seconds(60), "exited after \(took)")
            #expect(worker.output.contains("could not record job results") || worker.output.contains("shutdown did not finish within its deadline"))
            try await TestDatabase.withClient(url: serverURL) { admin in
                _ = try await admin.query("ALTER DATABASE \(unescaped: name) ALLOW_CONNECTIONS true", logger: TestDatabase.logger).collect()
            }
        }
    }
}

@Suite("PostgreSQL sessions of the processes")
struct SessionSettingsTests {
    @Test("every session of a process's pool runs with statement_timeout (30 s by default, CONVEYOR_STATEMENT_TIMEOUT)")
    func statementTimeout() async throws {
        try await TestDatabase.withFresh { client, url in
            // The insert reports the session's setting back through its error message.
            try await TestDatabase.installTrigger(
                "report_timeout", on: client, event: "BEFORE INSERT",
                body: "RAISE EXCEPTION 'statement_timeout=%', current_setting('statement_timeout');")
            let byDefault = try await ConveyorProcess.run(["enqueue", "--direct", "conveyor.noop"], environment: ["DATABASE_URL": url])
            #expect(byDefault.stderr.contains("statement_timeout=30s"), "\(byDefault.stderr)")
            let set = try await ConveyorProcess.run(
                ["enqueue", "--direct", "conveyor.noop"], environment: ["DATABASE_URL": url, "CONVEYOR_STATEMENT_TIMEOUT": "2m"])
            #expect(set.stderr.contains("statement_timeout=2min"), "\(set.stderr)")
            let off = try await ConveyorProcess.run(
                ["enqueue", "--direct", "conveyor.noop"], environment: ["DATABASE_URL": url, "CONVEYOR_STATEMENT_TIMEOUT": "off"])
            #expect(off.stderr.contains("statement_timeout=0"), "\(off.stderr)")
        }
    }
}
