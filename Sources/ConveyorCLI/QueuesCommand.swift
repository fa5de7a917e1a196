import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor queues [stats]|pause|resume`.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "Queue statistics; pause and resume queues.",
        subcommands: [Stats.self, Pause.self, Resume.self], defaultSubcommand: Stats.self)

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop every worker claiming from a queue (within a second); running jobs finish, ingestion goes on.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue.") var name: String
        @Option(help: "Who pauses, recorded (env: USER; default: operator@HOST).") var by: String?

        func run() async throws {
            try QueueName.check(name)
            let who = by ?? Settings.string(nil, env: "USER").map { "\($0)@\(ProcessInfo.processInfo.hostName)" } ?? "operator"
            let changed = try await database.withClient(logger: Logger(label: "conveyor.queues")) { client in
                try await PostgresJobStore(client: client).pause(queue: name, by: who)
            }
            print(changed ? "paused \(name)" : "\(name) was already paused")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let workers claim from a paused queue again (at once).")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue.") var name: String

        func run() async throws {
            try QueueName.check(name)
            let changed = try await database.withClient(logger: Logger(label: "conveyor.queues")) { client in
                try await PostgresJobStore(client: client).resume(queue: name)
            }
            print(changed ? "resumed \(name)" : "\(name) was not paused")
        }
    }
}

enum QueueName {
    static func check(_ name: String) throws {
        guard NewJob.isValidQueue(name) else {
            throw CommandError.configuration(setting: "queue", reason: "\(name.debugDescription) is not a queue name ([a-z0-9_-]{1,64})")
        }
    }
}

extension QueuesCommand {
  struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Job counts per queue and state, the oldest waiting job's age, and pauses (the default).")

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON lines, one queue per line.") var json = false

    func run() async throws {
        let queues = try await database.withClient(logger: Logger(label: "conveyor.queues")) { client in
            try await PostgresJobStore(client: client).queueSummaries()
        }
        if json {
            for queue in queues { print(queue.json) }
            return
        }
        var table = [["QUEUE"] + JobState.allCases.map { $0.rawValue.uppercased() } + ["OLDEST WAIT", "PAUSED"]]
        for queue in queues {
            let counts = JobState.allCases.map { String(queue.counts[$0] ?? 0) }
            let wait = queue.oldestWaitSeconds.map { String(format: "%.1fs", $0) } ?? "-"
            let pause = queue.pause.map { "since \(RFC3339.format($0.pausedAt)) by \($0.pausedBy)" } ?? "-"
            table.append([queue.queue] + counts + [wait, pause])
        }
        print(queues.isEmpty ? "no jobs" : TextTable.render(table))
    }
  }
}
