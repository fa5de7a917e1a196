import ConveyorTestSupport
import Foundation
import Testing

@Suite("Bad configuration stops a process with one line")
struct ConfigurationErrorTests {
    /// The one stderr line, or a recorded issue when there is not exactly one.
    private func oneLine(_ result: ConveyorProcess.Result) -> String {
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        return lines.first ?? ""
    }

    @Test("a missing DATABASE_URL is named", arguments: [["worker"], ["migrate"], ["queues"], ["jobs", "list"]])
    func missingURL(arguments: [String]) async throws {
        let result = try await ConveyorProcess.run(arguments)
        #expect(result.status == 78)
        #expect(oneLine(result) == "conveyor: DATABASE_URL: is not set; expected postgres://user:password@host:port/database")
    }

    @Test("a kind's malformed setting stops the worker with one line naming it", arguments: [
        ("META_API_VERSION", "23", "conveyor: META_API_VERSION: must look like v23.0, got 23"),
        ("META_ADS_GUARDRAILS", #"{"act_1": {"max_budget_change": "half"}}"#, "conveyor: META_ADS_GUARDRAILS: act_1.max_budget_change is not a guardrail or has the wrong type"),
        ("META_ADS_DRY_RUN", "perhaps", "conveyor: META_ADS_DRY_RUN: must be true or false, got perhaps"),
        ("ML_MAE_THRESHOLD", "two", "conveyor: ML_MAE_THRESHOLD: must be a number in"),
        ("ML_RETRAIN_NOTIFY_URL", "hooks.slack.com/services/T/B/secret", "conveyor: ML_RETRAIN_NOTIFY_URL: must be an http(s) URL"),
        ("CONVEYOR_MEDIA_ROOT", "/nonexistent/media", "conveyor: CONVEYOR_MEDIA_ROOT: /nonexistent/media is not a directory"),
        ("VIDEO_RENDER_CONCURRENCY", "0", "conveyor: VIDEO_RENDER_CONCURRENCY: must be 1–1000, got 0"),
    ])
    func kindSettings(variable: String, value: String, line: String) async throws {
        let result = try await ConveyorProcess.run(["worker", "--no-ingest"], environment: ["DATABASE_URL": "postgres://u@127.0.0.1:1/db", variable: value])
        #expect(result.status == 78)
        let shown = oneLine(result)
        #expect(shown.hasPrefix(line), "\(result.stderr)")
        #expect(!shown.contains("secret"), "a webhook URL is a secret")
    }

    @Test("a switch that is neither on nor off is named")
    func badSwitch() async throws {
        let result = try await ConveyorProcess.run(["worker"], environment: ["CONVEYOR_DIRECT_START": "maybe"])
        #expect(result.status == 78)
        #expect(oneLine(result) == #"conveyor: CONVEYOR_DIRECT_START: "maybe" must be 1 or 0 (true/false, yes/no, on/off)"#)
    }

    @Test("a metrics address that is malformed or taken is named", arguments: [
        (["worker", "--metrics-address", "9464"], [:], "conveyor: --metrics-address: '9464' is not HOST:PORT (e.g. 127.0.0.1:9464)"),
        (["scheduler"], ["CONVEYOR_METRICS_ADDRESS": "127.0.0.1:http"], "conveyor: CONVEYOR_METRICS_ADDRESS: '127.0.0.1:http' is not HOST:PORT with a port from 0 to 65535"),
        (["worker", "--no-ingest", "--metrics-address", "192.0.2.1:9464"], [:], "conveyor: --metrics-address: cannot listen on 192.0.2.1:9464"),
    ])
    func badMetricsAddress(arguments: [String], environment: [String: String], line: String) async throws {
        // Checked before the database is reached: the unreachable DATABASE_URL never comes into play.
        let result = try await ConveyorProcess.run(arguments, environment: environment.merging(["DATABASE_URL": "postgres://u@127.0.0.1:1/db"]) { a, _ in a })
        #expect(result.status == 78)
        #expect(oneLine(result).hasPrefix(line), "\(result.stderr)")
    }

    @Test("the dashboard needs a token beyond loopback, and a long one", arguments: [
        (["CONVEYOR_WEB_ADDRESS": "0.0.0.0:8080"], "conveyor: CONVEYOR_WEB_TOKEN: is not set: required to listen on 0.0.0.0, beyond loopback"),
        (["CONVEYOR_WEB_TOKEN": "short"], "conveyor: CONVEYOR_WEB_TOKEN: is 5 characters; use at least 16"),
        (["CONVEYOR_WEB_ADDRESS": "8080"], "conveyor: CONVEYOR_WEB_ADDRESS: '8080' is not HOST[:PORT]; for that port on loopback write 127.0.0.1:8080"),
    ])
    func badWebSettings(environment: [String: String], line: String) async throws {
        let result = try await ConveyorProcess.run(["web"], environment: environment.merging(["DATABASE_URL": "postgres://u@127.0.0.1:1/db"]) { a, _ in a })
        #expect(result.status == 78)
        #expect(oneLine(result).hasPrefix(line), "\(result.stderr)")
        #expect(!result.stderr.contains("short"), "the token itself is never printed")
    }

    @Test("a malformed DATABASE_URL is named with what is wrong", arguments: [
        ("mysql://u@h/db", "has scheme \"mysql\""),
        ("postgres://h/db", "has no user name"),
        ("postgres://u@h", "names no database"),
        ("postgres://u@h:99999/db", "out of range"),
        ("postgres://u@h/db?sslmode=weird", "unsupported sslmode"),
    ])
    func malformedURL(url: String, reason: String) async throws {
        let result = try await ConveyorProcess.run(["worker"], environment: ["DATABASE_URL": url])
        #expect(result.status == 78)
        let line = oneLine(result)
        #expect(line.hasPrefix("conveyor: DATABASE_URL: "))
        #expect(line.contains(reason))
    }

    @Test("an unreachable database gives the reason in one line, without the password")
    func unreachable() async throws {
        let result = try await ConveyorProcess.run(
            ["worker", "--no-ingest"], environment: ["DATABASE_URL": "postgres://conveyor:s3cret-pw@127.0.0.1:1/conveyor"])
        #expect(result.status == 69)
        let line = oneLine(result)
        #expect(line.hasPrefix("conveyor: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:1/conveyor"))
        #expect(line.contains("refused"))
        #expect(!(result.stderr + result.stdout).contains("s3cret-pw"))
    }

    @Test("a worker that ingests needs REDIS_URL, and says how to run without")
    func missingRedis() async throws {
        let result = try await ConveyorProcess.run(["worker"], environment: ["DATABASE_URL": "postgres://u@127.0.0.1:1/db"])
        #expect(result.status == 78)
        #expect(oneLine(result).hasPrefix("conveyor: REDIS_URL: is not set (the worker ingests from Redis; pass --no-ingest to run without)"))
    }

    @Test("an unreachable Redis gives the reason in one line, without the password")
    func unreachableRedis() async throws {
        let result = try await ConveyorProcess.run(
            ["enqueue", "conveyor.noop"], environment: ["REDIS_URL": "redis://:hunter2-secret@127.0.0.1:1/0"])
        #expect(result.status == 69)
        let line = oneLine(result)
        #expect(line.hasPrefix("conveyor: REDIS_URL: cannot connect to Redis: 127.0.0.1:1/0"))
        #expect(!(result.stderr + result.stdout).contains("hunter2"))
    }

    @Test("a database that does not exist is reported by the server's message")
    func noSuchDatabase() async throws {
        let url = TestDatabase.replacingDatabase(in: try TestDatabase.serverURL(), with: "no_such_db")
        let result = try await ConveyorProcess.run(["queues"], environment: ["DATABASE_URL": url])
        #expect(result.status == 69)
        #expect(oneLine(result).contains("database \"no_such_db\" does not exist"))
    }

    @Test("bad queue lists are named by flag or variable", arguments: [
        (["worker", "--queues", "default=x"], [String: String](), "conveyor: --queues: concurrency \"x\" for queue default must be an integer from 1 to 10000"),
        (["worker"], ["CONVEYOR_QUEUES": "Render=2"], "conveyor: CONVEYOR_QUEUES: queue name \"Render\" must match [a-z0-9_-]{1,64}"),
        (["worker"], ["CONVEYOR_CONCURRENCY": "lots"], "conveyor: CONVEYOR_CONCURRENCY: \"lots\" must be an integer from 1 to 10000"),
        (["worker", "--grace-period=-1"], [String: String](), "conveyor: --grace-period: -1.0 s is out of range 0.0...3600.0 s"),
        (["worker", "--retention-rejected", "forever"], [String: String](),
         "conveyor: --retention-rejected: \"forever\" is not a duration (e.g. 90s, 15m, 24h, 30d, or off)"),
        // The scheduler leads maintenance too, so it reads the same retention settings.
        (["scheduler"], ["CONVEYOR_RETENTION_DEAD": "1 month"],
         "conveyor: CONVEYOR_RETENTION_DEAD: \"1 month\" is not a duration (e.g. 90s, 15m, 24h, 30d, or off)"),
        // Settings that cannot work (issue 13): each stops the process naming itself.
        (["worker"], ["CONVEYOR_LOG_LEVEL": "loud"],
         "conveyor: CONVEYOR_LOG_LEVEL: \"loud\" is not a level (trace, debug, info, notice, warning, error, critical)"),
        (["worker", "--lease", "10", "--heartbeat-interval", "10"], [String: String](),
         "conveyor: --heartbeat-interval: 10.0 s must be shorter than the lease (10.0 s), or every job's lease lapses between renewals"),
        (["worker"], ["CONVEYOR_LEASE": "5", "CONVEYOR_HEARTBEAT_INTERVAL": "6"],
         "conveyor: CONVEYOR_HEARTBEAT_INTERVAL: 6.0 s must be shorter than the lease (5.0 s), or every job's lease lapses between renewals"),
        (["worker", "--ingest-batch", "0"], [String: String](), "conveyor: --ingest-batch: 0 is out of range 1...5000"),
        (["worker"], ["CONVEYOR_COMPLETION_BATCH": "0"], "conveyor: CONVEYOR_COMPLETION_BATCH: \"0\" must be an integer from 1 to 5000"),
        (["worker", "--max-rescues", "0"], [String: String](), "conveyor: --max-rescues: 0 is out of range 1...1000"),
        (["worker"], ["CONVEYOR_STATEMENT_TIMEOUT": "soon"],
         "conveyor: CONVEYOR_STATEMENT_TIMEOUT: \"soon\" is not a duration (e.g. 90s, 15m, 24h, 30d, or off)"),
    ])
    func badQueues(arguments: [String], environment: [String: String], expected: String) async throws {
        var environment = environment
        environment["DATABASE_URL"] = "postgres://conveyor@127.0.0.1:1/conveyor"
        let result = try await ConveyorProcess.run(arguments, environment: environment)
        #expect(result.status == 78)
        #expect(oneLine(result) == expected)
    }

    @Test("a database without the schema asks for conveyor migrate")
    func notMigrated() async throws {
        try await TestDatabase.withFresh(migrate: false) { _, url in
            let result = try await ConveyorProcess.run(["worker", "--no-ingest"], environment: ["DATABASE_URL": url])
            #expect(result.status == 1)
            #expect(oneLine(result).hasSuffix("has no Conveyor schema: run `conveyor migrate` first"))
        }
    }
}
