import ArgumentParser
import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor enqueue KIND` / `conveyor enqueue --stdin`: pushes envelopes to Redis (or, with
/// `--direct`, inserts into PostgreSQL).
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue one job (printing its id), or newline-delimited envelopes from stdin.",
        discussion: """
            By default the job is pushed as an envelope onto the Redis ingress, as any producer would; workers
            move it into PostgreSQL. --direct inserts it into PostgreSQL instead (and reports duplicates).
            Examples:
              conveyor enqueue conveyor.sleep --args '{"seconds": 2}' --priority 3
              printf '%s\\n' '{"v":1,"kind":"conveyor.noop"}' '{"v":1,"kind":"conveyor.noop"}' | conveyor enqueue --stdin
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var redis: RedisOptions

    @Argument(help: "The job kind, e.g. conveyor.noop (omit with --stdin).")
    var kind: String?

    @Flag(help: "Read one JSON envelope per line from stdin and push them all (all are validated first).")
    var stdin = false

    @Flag(help: "Insert straight into PostgreSQL (DATABASE_URL) instead of pushing to Redis.")
    var direct = false

    @Option(help: "The handler's arguments, a JSON object (default {}).")
    var args: String = "{}"

    @Option(help: "The queue (default: default).")
    var queue: String = "default"

    @Option(help: "0 (first) to 9 (default 5).")
    var priority: Int = 5

    @Option(name: .customLong("run-at"), help: "Do not run before this RFC 3339 time.")
    var runAt: String?

    @Option(name: .customLong("max-attempts"), help: "Attempts before dead-letter, 1-1000 (default: the kind's).")
    var maxAttempts: Int?

    @Option(name: .customLong("unique-key"), help: "Drop this job while an unfinished job has the same key.")
    var uniqueKey: String?

    @Option(name: .customLong("limit-key"), help: "The throttled key it counts against (e.g. meta:act_123): paused keys and per-key rates hold it.")
    var limitKey: String?

    @Option(name: .customLong("tag"), help: "A label (repeatable).")
    var tags: [String] = []

    @Option(help: "The job id (UUID), to make the enqueue idempotent.")
    var id: String?

    func run() async throws {
        let jobs = try stdin ? readEnvelopes() : [makeJob()]
        let registry = ConveyorKinds.registry()
        if direct {
            let logger = Logger(label: "conveyor.enqueue")
            let result = try await database.withClient(logger: logger) { client in
                try await ConveyorClient(postgres: client, maxAttempts: { registry.defaultMaxAttempts(for: $0) }).insert(jobs)
            }
            let inserted = Set(result.inserted)
            for job in jobs {
                let id = job.id.uuidString.lowercased()
                print(inserted.contains(job.id) ? id : "\(id) dropped: duplicate id or unique key")
            }
            return
        }
        let configuration = try redis.configuration(purpose: "enqueue pushes to Redis; pass --direct to insert into PostgreSQL")
        let keys = try redis.keys()
        try await RedisOptions.check(configuration).close()
        do {
            try await ConveyorClient(redis: configuration, keys: keys).enqueue(jobs)
        } catch {
            throw CommandError.unavailable("REDIS_URL: \(error)")
        }
        if stdin {
            print("pushed \(jobs.count) envelope\(jobs.count == 1 ? "" : "s") onto \(keys.ingress)")
        } else {
            print(jobs[0].id.uuidString.lowercased())
        }
    }

    func makeJob() throws -> NewJob {
        guard let kind else {
            throw CommandError.configuration(setting: "KIND", reason: "give a job kind, or --stdin to read envelopes")
        }
        var job = NewJob(kind: kind, args: args, queue: queue, priority: priority, maxAttempts: maxAttempts, uniqueKey: uniqueKey, tags: tags, limitKey: limitKey)
        if let runAt {
            guard let date = RFC3339.parse(runAt) else {
                throw CommandError.configuration(setting: "--run-at", reason: "\(runAt.debugDescription) is not an RFC 3339 time")
            }
            job.runAt = date
        }
        if let id {
            guard let uuid = UUID(uuidString: id) else {
                throw CommandError.configuration(setting: "--id", reason: "\(id.debugDescription) is not a UUID")
            }
            job.id = uuid
        }
        do {
            try job.validate()
        } catch {
            throw CommandError.configuration(setting: "job", reason: error.description)
        }
        return job
    }

    /// Every line of stdin as an envelope; the first invalid line stops everything before anything is pushed.
    func readEnvelopes() throws -> [NewJob] {
        guard kind == nil else { throw CommandError.configuration(setting: "--stdin", reason: "takes no KIND argument") }
        var jobs: [NewJob] = []
        var number = 0
        while let line = readLine(strippingNewline: true) {
            number += 1
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            switch Envelope.decode(Data(line.utf8)) {
            case .success(let job): jobs.append(job)
            case .failure(let rejection):
                throw CommandError.configuration(setting: "stdin line \(number)", reason: rejection.reason)
            }
        }
        return jobs
    }
}
