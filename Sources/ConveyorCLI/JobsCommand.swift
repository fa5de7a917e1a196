import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor jobs list|show|retry|discard|cancel`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Inspect jobs, retry dead ones, cancel or discard what should not run.",
        subcommands: [List.self, Show.self, Retry.self, Discard.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "available, running, completed, dead or cancelled.") var state: String?
        @Option(help: "Only this kind.") var kind: String?
        @Option(help: "Only this queue.") var queue: String?
        @Option(help: "At most this many (default 50).") var limit: Int = 50
        @Option(help: "Page: only jobs inserted before the one with this seq (the last line's \"seq\" in --json).") var before: Int?
        @Flag(help: "Print JSON lines, one job per line.") var json = false

        func run() async throws {
            var filter = JobFilter(kind: kind, queue: queue, beforeSeq: before, limit: max(1, min(limit, 10_000)))
            if let state {
                guard let parsed = JobState(rawValue: state) else {
                    throw CommandError.configuration(
                        setting: "--state", reason: "\(state.debugDescription) is not one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                filter.state = parsed
            }
            let query = filter
            let jobs = try await database.withClient(logger: Logger(label: "conveyor.jobs")) { client in
                try await PostgresJobStore(client: client).jobs(query)
            }
            if json {
                for job in jobs { print(JobOutput.json(job)) }
            } else {
                print(JobOutput.table(jobs))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job with its error history.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let uuid = try JobIDs.parse([id])[0]
            let job = try await database.withClient(logger: Logger(label: "conveyor.jobs")) { client in
                try await PostgresJobStore(client: client).job(id: uuid)
            }
            guard let job else { throw CommandError.failed("no job with id \(id)") }
            print(json ? JobOutput.json(job) : JobOutput.details(job))
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give dead jobs another attempt now (by id: dead or cancelled ones).")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var target: JobTargetOptions

        func run() async throws {
            let target = try target.target()
            let ids = try await database.withClient(logger: Logger(label: "conveyor.jobs")) { client in
                try await PostgresJobStore(client: client).retry(target)
            }
            print("retried \(ids.count) job\(ids.count == 1 ? "" : "s")")
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel waiting or dead jobs so they never run.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var target: JobTargetOptions
        @Option(help: "Recorded on each job (default: discarded by operator).") var reason = "discarded by operator"
        @Option(help: "Who discards, recorded on each job (default: $USER@HOST, or operator).") var by: String?

        func run() async throws {
            let target = try target.target()
            let who = by ?? Settings.operatorName()
            let ids = try await database.withClient(logger: Logger(label: "conveyor.jobs")) { client in
                try await PostgresJobStore(client: client).discard(target, reason: reason, by: who)
            }
            print("discarded \(ids.count) job\(ids.count == 1 ? "" : "s")")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel waiting jobs, and stop running ones (within a second) through task cancellation.",
            discussion: """
                Waiting jobs end `cancelled` at once. Running jobs are asked to stop: their worker is notified \
                and cancels the handler's task; the job ends `cancelled` with the reason and who asked.
                """)

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var target: JobTargetOptions
        @Option(help: "Every waiting or running job of this queue.") var queue: String?
        @Option(help: "Recorded on each job (default: cancelled by operator).") var reason = "cancelled by operator"
        @Option(help: "Who cancels, recorded on each job (default: $USER@HOST, or operator).") var by: String?

        func run() async throws {
            let target = try target.target(queue: queue, queueAllowed: true)
            let who = by ?? Settings.operatorName()
            let result = try await database.withClient(logger: Logger(label: "conveyor.jobs")) { client in
                try await PostgresJobStore(client: client).cancel(target, reason: reason, by: who)
            }
            print("cancelled \(result.cancelled.count) waiting job\(result.cancelled.count == 1 ? "" : "s"); asked \(result.requested.count) running job\(result.requested.count == 1 ? "" : "s") to stop")
        }
    }
}

/// Which jobs `retry`, `discard` and `cancel` act on: ids, `--kind`, (`--queue`) or `--all`, exactly one.
struct JobTargetOptions: ParsableArguments {
    @Argument(help: "Job ids.") var ids: [String] = []
    @Option(help: "Every eligible job of this kind.") var kind: String?
    @Flag(help: "Every eligible job.") var all = false

    func target(queue: String? = nil, queueAllowed: Bool = false) throws -> JobTarget {
        let given = [!ids.isEmpty, kind != nil, all, queue != nil].filter { $0 }.count
        guard given == 1 else {
            let choices = queueAllowed ? "job ids, --kind KIND, --queue NAME or --all" : "job ids, --kind KIND or --all"
            throw CommandError.configuration(setting: "target", reason: "give \(choices) (exactly one)")
        }
        if !ids.isEmpty { return .ids(try JobIDs.parse(ids)) }
        if let kind { return .kind(kind) }
        if let queue { return .queue(queue) }
        return .all
    }
}

enum JobIDs {
    static func parse(_ texts: [String]) throws -> [UUID] {
        try texts.map { text in
            guard let id = UUID(uuidString: text) else {
                throw CommandError.configuration(setting: "id", reason: "\(text.debugDescription) is not a job id (UUID)")
            }
            return id
        }
    }
}
