import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor queues`: counts per queue and state, and how long the oldest due job has waited.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "Job counts per queue and state, and the oldest waiting job's age.")

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON lines, one queue per line.") var json = false

    func run() async throws {
        let stats = try await database.withClient(logger: Logger(label: "conveyor.queues")) { client in
            try await PostgresJobStore(client: client).queueStatistics()
        }
        let queues = Dictionary(grouping: stats, by: \.queue).sorted { $0.key < $1.key }
        if json {
            for (queue, rows) in queues {
                var object: [String: Any] = ["queue": queue]
                for state in JobState.allCases { object[state.rawValue] = rows.first { $0.state == state }?.count ?? 0 }
                object["oldest_wait_seconds"] = rows.first { $0.state == .available }?.oldestWaitSeconds ?? 0
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        var table = [["QUEUE"] + JobState.allCases.map { $0.rawValue.uppercased() } + ["OLDEST WAIT"]]
        for (queue, rows) in queues {
            let counts = JobState.allCases.map { state in String(rows.first { $0.state == state }?.count ?? 0) }
            let wait = rows.first { $0.state == .available }?.oldestWaitSeconds.map { String(format: "%.1fs", $0) } ?? "-"
            table.append([queue] + counts + [wait])
        }
        print(queues.isEmpty ? "no jobs" : TextTable.render(table))
    }
}
