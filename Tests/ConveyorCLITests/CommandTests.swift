import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

@Suite("Commands against a real database")
struct CommandTests {
    @Test("migrate applies the files once, finding migrations/ next to the binary's checkout")
    func migrate() async throws {
        try await TestDatabase.withFresh(migrate: false) { _, url in
            let env = ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info"]
            let first = try await ConveyorProcess.run(["migrate"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("applied=0001_jobs.sql"))
            let second = try await ConveyorProcess.run(["migrate"], environment: env)
            #expect(second.status == 0)
            #expect(second.stdout.contains("database is up to date"))
        }
    }

    @Test("bench runs every phase on a small workload, reports each figure as JSON and deletes its scratch jobs")
    func bench() async throws {
        try await TestDatabase.withFresh { client, url in
            let env = ["DATABASE_URL": url, "REDIS_URL": try TestRedis.url()]
            let full = try await ConveyorProcess.run(["bench", "--jobs", "300", "--concurrency", "20", "--samples", "3", "--json"], environment: env)
            #expect(full.status == 0, "\(full.stderr)")
            let figures = try #require(try JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as? [String: Any])
            for key in [
                "insert_jobs_per_second", "runtime_jobs_per_second", "ceiling_jobs_per_second", "end_to_end_jobs_per_second",
                "end_to_end_ceiling_jobs_per_second", "direct_ceiling_jobs_per_second", "claim_path_ceiling_jobs_per_second", "latency_p50_ms", "latency_p99_ms",
            ] {
                #expect(((figures[key] as? NSNumber)?.doubleValue ?? 0) > 0, "\(key) in \(full.stdout)")
            }
            #expect(figures["latency_samples"] as? Int == 3)
            // With the trace on, every claim is logged: on stderr, so stdout stays one JSON object.
            let profiled = try await ConveyorProcess.run(
                ["bench", "--jobs", "200", "--end-to-end-only", "--samples", "1", "--json"], environment: env.merging(["CONVEYOR_BENCH_TRACE": "1"]) { $1 })
            #expect(profiled.status == 0, "\(profiled.stderr)")
            let endToEnd = try #require(try JSONSerialization.jsonObject(with: Data(profiled.stdout.utf8)) as? [String: Any])
            #expect(endToEnd["end_to_end_jobs_per_second"] != nil && endToEnd["ceiling_jobs_per_second"] == nil)
            #expect(profiled.stderr.contains("trace"))
            #expect(try await PostgresJobStore(client: client).jobs(JobFilter(limit: 10)).isEmpty)
        }
    }

    @Test("enqueue, list, show, discard and retry from the command line")
    func adminFlow() async throws {
        try await TestDatabase.withFresh { client, url in
            let env = ["DATABASE_URL": url]
            let enqueued = try await ConveyorProcess.run(
                ["enqueue", "--direct", "conveyor.sleep", "--args", #"{"seconds": 1}"#, "--queue", "media", "--priority", "2",
                 "--max-attempts", "3", "--tag", "demo", "--run-at", "2030-01-01T00:00:00Z"], environment: env)
            #expect(enqueued.status == 0, "\(enqueued.stderr)")
            let id = try #require(UUID(uuidString: enqueued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

            let listed = try await ConveyorProcess.run(["jobs", "list", "--queue", "media", "--json"], environment: env)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])
            #expect(object["id"] as? String == id.uuidString.lowercased())
            #expect(object["state"] as? String == "available" && object["priority"] as? Int == 2)
            #expect(object["max_attempts"] as? Int == 3 && object["run_at"] as? String == "2030-01-01T00:00:00Z")
            #expect((object["args"] as? [String: Any])?["seconds"] as? Int == 1)

            let shown = try await ConveyorProcess.run(["jobs", "show", id.uuidString], environment: env)
            #expect(shown.stdout.contains("kind:         conveyor.sleep") && shown.stdout.contains("tags:         demo"))

            let discarded = try await ConveyorProcess.run(["jobs", "discard", id.uuidString], environment: env)
            #expect(discarded.stdout == "discarded 1 job\n")
            let store = PostgresJobStore(client: client)
            #expect(try await store.require(id).state == .cancelled)

            let retried = try await ConveyorProcess.run(["jobs", "retry", id.uuidString], environment: env)
            #expect(retried.stdout == "retried 1 job\n")
            #expect(try await store.require(id).state == .available)

            let duplicate = try await ConveyorProcess.run(["enqueue", "--direct", "conveyor.noop", "--id", id.uuidString], environment: env)
            #expect(duplicate.stdout.contains("dropped: duplicate id or unique key"))

            let queues = try await ConveyorProcess.run(["queues"], environment: env)
            #expect(queues.stdout.contains("media"))

            let invalid = try await ConveyorProcess.run(["enqueue", "--direct", "Bad Kind"], environment: env)
            #expect(invalid.status == 78 && invalid.stderr.contains("kind \"Bad Kind\" must match"))
            let ambiguous = try await ConveyorProcess.run(["jobs", "retry", "--all", "--kind", "x"], environment: env)
            #expect(ambiguous.status == 78 && ambiguous.stderr.contains("exactly one"))
        }
    }

    @Test("SIGTERM: the worker process stops claiming, returns unfinished jobs after the grace period, exits 0")
    func sigterm() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let job = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 600}"#)]).inserted[0]
            let worker = try RunningProcess(
                ["worker", "--no-ingest", "--grace-period", "0.5", "--queues", "default=2"],
                environment: ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "debug"])
            await worker.waitFor("job started")
            worker.signal(SIGTERM)
            let status = await worker.exitStatus()
            #expect(status == 0, "\(worker.output)")
            #expect(worker.output.contains("grace period over"))
            let record = try await store.require(job)
            #expect(record.state == .available && record.attempt == 0 && record.errors.isEmpty)
        }
    }

    @Test("--metrics-address serves the process's metrics in the Prometheus format, and /healthz")
    func metricsEndpoint() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let job = try await store.insert([NewJob(kind: "conveyor.noop")]).inserted[0]
            let worker = try RunningProcess(
                ["worker", "--no-ingest", "--metrics-address", "127.0.0.1:0"], environment: ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "debug"])
            await worker.waitFor("job completed")
            let port = try #require(worker.output.firstMatch(of: /port=(\d+) .*metrics endpoint listening/)?.1)
            let get = { (path: String) in
                try await ConveyorProcess.tool(
                    ["python3", "-c", Self.httpGet, "http://127.0.0.1:\(port)\(path)"], environment: ConveyorProcess.environment([:]))
            }
            let metrics = try await get("/metrics")
            #expect(metrics.stdout.hasPrefix("200 text/plain; version=0.0.4"), "\(metrics.stdout)\(metrics.stderr)")
            #expect(metrics.stdout.contains(#"conveyor_jobs_total{kind="conveyor.noop",queue="default",outcome="completed"} 1"#))
            #expect(metrics.stdout.contains("# TYPE conveyor_claim_batch_size histogram"))
            #expect(try await get("/healthz").stdout == "200 text/plain; charset=utf-8\nok\n")
            #expect(try await get("/nothing").stdout.hasPrefix("404"))
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0, "\(worker.output)")
            #expect(try await store.require(job).state == .completed)
        }
    }

    @Test("conveyor web serves the dashboard and its health check, and stops cleanly on SIGTERM")
    func web() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let id = try await store.insert([NewJob(kind: "conveyor.noop", queue: "mail")]).inserted[0]
            let web = try RunningProcess(
                ["web", "--address", "127.0.0.1:0"], environment: ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info"])
            await web.waitFor("dashboard listening")
            let port = try #require(web.output.firstMatch(of: /port=(\d+) .*dashboard listening/)?.1)
            let get = { (path: String) in
                try await ConveyorProcess.tool(
                    ["python3", "-c", Self.httpGet, "http://127.0.0.1:\(port)\(path)"], environment: ConveyorProcess.environment([:]))
            }
            let page = try await get("/jobs?queue=mail")
            #expect(page.stdout.hasPrefix("200 text/html") && page.stdout.contains(id.uuidString.lowercased()), "\(page.stdout)\(page.stderr)")
            #expect(try await get("/healthz").stdout == "200 text/plain; charset=utf-8\nok\n")
            #expect(try await get("/metrics").stdout.contains(#"conveyor_queue_jobs{queue="mail",state="available"} 1"#))
            web.signal(SIGTERM)
            #expect(await web.exitStatus() == 0, "\(web.output)")
        }
    }

    /// Prints the status, the content type and the body of a GET (HTTP errors included).
    private static let httpGet = """
        import sys, urllib.request, urllib.error
        try:
            response = urllib.request.urlopen(sys.argv[1], timeout=10)
        except urllib.error.HTTPError as error:
            response = error
        print(response.status, response.headers["Content-Type"])
        sys.stdout.write(response.read().decode())
        """

    @Test("a second signal exits at once, leaving the job to its lease")
    func secondSignal() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let job = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 600}"#)]).inserted[0]
            let worker = try RunningProcess(
                ["worker", "--no-ingest", "--grace-period", "600"], environment: ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "debug"])
            await worker.waitFor("job started")
            worker.signal(SIGTERM)
            await worker.waitFor("waiting for running jobs")
            worker.signal(SIGTERM)
            let status = await worker.exitStatus()
            #expect(status == 128 + SIGTERM)
            #expect(try await store.require(job).state == .running)
        }
    }
}
