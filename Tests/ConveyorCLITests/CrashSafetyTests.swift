import ConveyorCore
import ConveyorTestSupport
import Foundation
import Testing

/// Crash safety with real worker processes: SIGKILL, leader failover, pause and cancel across processes.
@Suite("Crash safety across processes")
struct CrashSafetyTests {
    /// Worker settings with short leases, so the tests run in seconds.
    static func environment(url: String, id: String) -> [String: String] {
        [
            "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_WORKER_ID": id, "CONVEYOR_LEASE": "2",
            "CONVEYOR_LEADER_TTL": "2", "CONVEYOR_POLL_INTERVAL": "0.1", "CONVEYOR_RESCUE_DELAY": "0",
        ]
    }

    @Test("a SIGKILLed worker's job is rescued after its lease (attempt counted, lease_expired recorded) and runs again")
    func rescueAfterKill() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let id = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 600}"#, maxAttempts: 5)]).inserted[0]
            var env = Self.environment(url: url, id: "doomed")
            env["CONVEYOR_LOG_LEVEL"] = "debug"
            let doomed = try RunningProcess(["worker", "--no-ingest"], environment: env)
            await doomed.waitFor("job started")
            doomed.signal(SIGKILL)
            _ = await doomed.exitStatus()
            let held = try await store.require(id)
            #expect(held.state == .running && held.lockedBy == "doomed" && held.attempt == 1)
            try await Self.expectRescued(id, from: "doomed", store: store, url: url)
        }
    }

    /// Starts a survivor worker and expects it to run job `id` again once the lease of the killed
    /// `worker` expired: attempt 2, `lease_expired` recorded, naming the dead worker.
    static func expectRescued(_ id: UUID, from worker: String, store: PostgresJobStore, url: String) async throws {
        let survivor = try RunningProcess(["worker", "--no-ingest"], environment: environment(url: url, id: "survivor"))
        defer { survivor.signal(SIGKILL) }
        try await eventually("the job runs again on the survivor") {
            let job = try await store.require(id)
            return job.state == .running && job.lockedBy == "survivor"
        }
        let again = try await store.require(id)
        #expect(again.attempt == 2)
        #expect(again.errors.map(\.kind) == [.leaseExpired])
        #expect(again.errors.first?.message.contains(worker) == true)
    }

    @Test("a job the SIGKILLed worker started directly (pushed to Redis, inserted running by its ingester) is rescued the same way")
    func rescueDirectStartAfterKill() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            var env = Self.environment(url: url, id: "doomed")
            env["CONVEYOR_LOG_LEVEL"] = "debug"
            env["REDIS_URL"] = try TestRedis.url()
            env["CONVEYOR_REDIS_NAMESPACE"] = TestRedis.namespace()
            // No poll ticks: once a job has run, the worker knows its queue is empty and stays sure of it.
            env["CONVEYOR_POLL_INTERVAL"] = "3600"
            let doomed = try RunningProcess(["worker"], environment: env)
            #expect(try await ConveyorProcess.run(["enqueue", "conveyor.noop"], environment: env).status == 0)
            await doomed.waitFor("job completed")
            let pushed = try await ConveyorProcess.run(
                ["enqueue", "conveyor.sleep", "--args", #"{"seconds": 600}"#, "--max-attempts", "5"], environment: env)
            #expect(pushed.status == 0, "\(pushed.stderr)")
            await doomed.waitFor("kind=conveyor.sleep")
            doomed.signal(SIGKILL)
            _ = await doomed.exitStatus()
            let held = try #require(try await store.jobs(JobFilter(kind: "conveyor.sleep", limit: 10)).first)
            // Inserted and attempted by one statement: the ingester started it, no claim did.
            #expect(held.state == .running && held.lockedBy == "doomed" && held.attempt == 1 && held.attemptedAt == held.insertedAt)
            try await Self.expectRescued(held.id, from: "doomed", store: store, url: url)
        }
    }

    @Test("when the leader process is killed another takes over and maintenance goes on")
    func leaderFailover() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let a = try RunningProcess(["worker", "--no-ingest"], environment: Self.environment(url: url, id: "a"))
            let b = try RunningProcess(["worker", "--no-ingest"], environment: Self.environment(url: url, id: "b"))
            defer {
                a.signal(SIGKILL)
                b.signal(SIGKILL)
            }
            try await eventually("a leader is elected") { try await store.leader("maintenance") != nil }
            let first = try #require(try await store.leader("maintenance"))
            let (leader, follower) = first == "a" ? (a, b) : (b, a)
            leader.signal(SIGKILL)
            _ = await leader.exitStatus()
            try await eventually("the other process leads") { try await store.leader("maintenance") == (first == "a" ? "b" : "a") }
            await follower.waitFor("became leader")

            // Maintenance continues on the new leader: a job abandoned by a dead worker is rescued.
            let id = try await store.insert([NewJob(kind: "conveyor.noop", queue: "orphans")]).inserted[0]
            _ = try await store.claim(queue: "orphans", limit: 1, worker: "ghost", lease: .milliseconds(100))
            try await eventually("the orphan is rescued") { try await store.require(id).state == .available }
            #expect(try await store.require(id).errors.map(\.kind) == [.leaseExpired])
        }
    }

    @Test("a paused queue is honoured by a worker process, still ingests, and runs again once resumed")
    func pauseAcrossProcesses() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            var env = Self.environment(url: url, id: "w")
            env["REDIS_URL"] = try TestRedis.url()
            env["CONVEYOR_REDIS_NAMESPACE"] = TestRedis.namespace()
            let worker = try RunningProcess(["worker", "--queues", "mail=2,render=2"], environment: env)
            defer { worker.signal(SIGKILL) }
            await worker.waitFor("ingester started")

            let pause = try await ConveyorProcess.run(["queues", "pause", "mail", "--by", "ops"], environment: env)
            #expect(pause.status == 0 && pause.stdout.contains("paused mail"), "\(pause.stderr)")
            // Both pushed through Redis: the paused queue still ingests.
            let mail = try await ConveyorProcess.run(["enqueue", "conveyor.noop", "--queue", "mail"], environment: env)
            let render = try await ConveyorProcess.run(["enqueue", "conveyor.noop", "--queue", "render"], environment: env)
            let mailID = try #require(UUID(uuidString: mail.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(mail.stderr)")
            let renderID = try #require(UUID(uuidString: render.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(render.stderr)")
            // The render job was pushed after the mail job and has completed: the worker had every chance
            // to claim the mail job, and did not.
            try await eventually("the render job completes") { try await store.job(id: renderID)?.state == .completed }
            #expect(try await store.require(mailID).state == .available)
            let stats = try await ConveyorProcess.run(["queues", "--json"], environment: env)
            #expect(stats.stdout.contains(#""paused":true"#), "\(stats.stdout)")

            let resume = try await ConveyorProcess.run(["queues", "resume", "mail"], environment: env)
            #expect(resume.status == 0 && resume.stdout.contains("resumed mail"))
            try await eventually("the mail job completes after resume") { try await store.require(mailID).state == .completed }
        }
    }

    @Test("conveyor jobs cancel stops a running job in a worker process, recording who and why")
    func cancelAcrossProcesses() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            var env = Self.environment(url: url, id: "w")
            // Leases of an hour: heartbeats every 20 minutes, so only the notification delivers the cancel.
            env["CONVEYOR_LEASE"] = "3600"
            let worker = try RunningProcess(["worker", "--no-ingest"], environment: env)
            defer { worker.signal(SIGKILL) }
            let id = try await store.insert([NewJob(kind: "conveyor.sleep", args: #"{"seconds": 600}"#)]).inserted[0]
            try await eventually("the job runs") { try await store.require(id).state == .running }
            let cancel = try await ConveyorProcess.run(
                ["jobs", "cancel", id.uuidString, "--reason", "wrong audience", "--by", "alice"], environment: env)
            #expect(cancel.status == 0 && cancel.stdout.contains("asked 1 running job to stop"), "\(cancel.stdout)\(cancel.stderr)")
            try await eventually("the job ends cancelled") { try await store.require(id).state == .cancelled }
            let record = try await store.require(id)
            #expect(record.cancelReason == "wrong audience" && record.cancelledBy == "alice" && record.errors.isEmpty)
        }
    }
}

@Suite("Scheduler process")
struct SchedulerProcessTests {
    @Test("conveyor scheduler emits the current slot at once, lists it in conveyor schedules, and stops cleanly on SIGTERM")
    func schedulerProcess() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let env = [
                "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_LEADER_TTL": "2",
                // Every minute: the slot of the current minute is due as soon as the scheduler starts.
                "CONVEYOR_SCHEDULES": #"{"conveyor.canary": {"cron": "* * * * *", "queue": "canary"}}"#,
            ]
            let scheduler = try RunningProcess(["scheduler"], environment: env)
            await scheduler.waitFor("emitted scheduled job")
            let jobs = try await store.jobs(JobFilter(queue: "canary"))
            #expect(jobs.count >= 1 && jobs.allSatisfy { $0.kind == "conveyor.noop" && $0.uniqueKey?.hasPrefix("schedule:conveyor.canary:") == true })
            let listed = try await ConveyorProcess.run(["schedules", "--json"], environment: env)
            #expect(listed.status == 0 && listed.stdout.contains(#""name":"conveyor.canary""#) && !listed.stdout.contains(#""last":null"#), "\(listed.stdout)\(listed.stderr)")
            scheduler.signal(SIGTERM)
            #expect(await scheduler.exitStatus() == 0, "\(scheduler.output)")
            #expect(try await store.leader("scheduler") == nil, "it resigned")

            let bad = try await ConveyorProcess.run(["scheduler"], environment: env.merging(["CONVEYOR_SCHEDULES": #"{"nope": "off"}"#]) { $1 })
            #expect(bad.status == 78 && bad.stderr.contains("CONVEYOR_SCHEDULES"), "\(bad.stderr)")
        }
    }
}
