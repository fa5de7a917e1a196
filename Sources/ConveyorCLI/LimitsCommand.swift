import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor limits`: the cluster-wide concurrency limits the workers enforce, with running counts.
struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Cluster-wide concurrency limits per kind (as the workers declared them) and how many of each run now.")

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON lines, one kind per line.") var json = false

    func run() async throws {
        let limits = try await database.withClient(logger: Logger(label: "conveyor.limits")) { client in
            try await PostgresJobStore(client: client).concurrencyLimits()
        }
        if json {
            for limit in limits { print(limit.json) }
            return
        }
        guard !limits.isEmpty else {
            print("no concurrency limits (declare one with JobKindOptions(concurrencyLimit:) or CONVEYOR_LIMITS)")
            return
        }
        var table = [["KIND", "RUNNING", "LIMIT", "DECLARED BY", "AT"]]
        for limit in limits {
            table.append([
                TerminalText.escape(limit.kind), String(limit.running), String(limit.concurrency),
                TerminalText.escape(limit.declaredBy), RFC3339.format(limit.declaredAt),
            ])
        }
        print(TextTable.render(table))
    }
}
