import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor enqueue KIND`: inserts one job (directly into PostgreSQL for now).
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue one job and print its id.",
        discussion: "Example: conveyor enqueue conveyor.sleep --args '{\"seconds\": 2}' --queue default --priority 3")

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The job kind, e.g. conveyor.noop.")
    var kind: String

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

    @Option(name: .customLong("tag"), help: "A label (repeatable).")
    var tags: [String] = []

    @Option(help: "The job id (UUID), to make the enqueue idempotent.")
    var id: String?

    func run() async throws {
        let job = try makeJob()
        let logger = Logger(label: "conveyor.enqueue")
        let registry = ConveyorKinds.registry()
        let inserted = try await database.withClient(logger: logger) { client in
            try await ConveyorClient(postgres: client, maxAttempts: { registry.defaultMaxAttempts(for: $0) })
                .enqueue(job)
        }
        print(inserted ? job.id.uuidString.lowercased() : "\(job.id.uuidString.lowercased()) dropped: duplicate id or unique key")
    }

    func makeJob() throws -> NewJob {
        var job = NewJob(kind: kind, args: args, queue: queue, priority: priority, maxAttempts: maxAttempts, uniqueKey: uniqueKey, tags: tags)
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
}
