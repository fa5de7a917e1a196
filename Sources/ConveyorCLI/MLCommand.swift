import ArgumentParser
import ConveyorCore
import ConveyorKindML
import ConveyorPostgres
import ConveyorWeb
import Foundation
import Logging

/// `conveyor ml status`: the CTR model in use, its metrics and age, and the last retrain checks.
struct MLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ml", abstract: "The CTR model's retraining loop (ml.* kinds).", subcommands: [Status.self], defaultSubcommand: Status.self)

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The current model (version, metrics, age), predictions by status, and the last checks.")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "How many checks, newest first.") var limit = 10
        @Flag(help: #"Print JSON lines: {"model": …}, {"predictions": …}, then {"check": …} per check."#) var json = false

        func run() async throws {
            let (model, counts, checks, now) = try await database.withClient(logger: Logger(label: "conveyor.ml")) { client in
                let store = MLStore(store: PostgresJobStore(client: client))
                return (try await store.currentModel(), try await store.predictionCounts(), try await store.checks(limit: max(1, min(limit, 1000))), try await PostgresJobStore(client: client).now())
            }
            if json {
                if let model {
                    print(#"{"model":{"version":\#(model.version),"samples":\#(model.samples),"trained_at":"\#(RFC3339.format(model.trainedAt))","age_days":\#(String(format: "%.2f", now.timeIntervalSince(model.promotedAt ?? model.trainedAt) / 86_400)),"metrics":\#(model.metrics),"artifact":\#(model.artifact)}}"#)
                } else {
                    print(#"{"model":null}"#)
                }
                print(#"{"predictions":{"predicted":\#(counts["predicted"] ?? 0),"running":\#(counts["running"] ?? 0),"completed":\#(counts["completed"] ?? 0)}}"#)
                for check in checks { print(#"{"check":\#(check.result)}"#) }
                return
            }
            if let model {
                let age = Duration.seconds(now.timeIntervalSince(model.promotedAt ?? model.trainedAt)).readable
                print("current model: version \(model.version), \(model.samples) samples, trained \(RFC3339.format(model.trainedAt)) (\(age) ago)")
                print("  holdout metrics: \(model.metrics)")
            } else {
                print("no model trained yet (the ML service's own predictions are the baseline)")
            }
            print("predictions: \(counts["predicted"] ?? 0) predicted, \(counts["running"] ?? 0) running, \(counts["completed"] ?? 0) completed")
            if checks.isEmpty {
                print("no checks yet (schedule ml.retrain_check runs daily at 02:00 UTC; `conveyor enqueue ml.retrain_check` runs one now)")
                return
            }
            var table = [["CHECKED AT", "STATUS", "REASON", "JOB"]]
            for check in checks {
                table.append([RFC3339.format(check.checkedAt), check.status, check.reason ?? "–", check.job.uuidString])
            }
            print(TextTable.render(table))
        }
    }
}

/// The retraining loop on the dashboard (`/panels/retraining`): the current model and the checks' history.
struct RetrainingPanel: DashboardPanel {
    let store: MLStore

    var slug: String { "retraining" }
    var title: String { "CTR retraining" }

    func content() async throws -> DashboardPanelContent {
        let model = try await store.currentModel()
        let counts = try await store.predictionCounts()
        let checks = try await store.checks(limit: 100)
        var modelRows: [DashboardPanelContent.Row] = []
        if let model {
            modelRows.append(.init(id: "\(model.version)", cells: ["\(model.version)", "\(model.samples)", RFC3339.format(model.trainedAt), model.promotedAt.map { RFC3339.format($0) } ?? "–", model.metrics]))
        }
        return DashboardPanelContent(sections: [
            .init(title: "Current model", header: ["Version", "Samples", "Trained", "Promoted", "Holdout metrics"], rows: modelRows, empty: "No model trained yet."),
            .init(
                title: "Predictions", header: ["Predicted", "Running", "Completed"],
                rows: [.init(id: "counts", cells: ["\(counts["predicted"] ?? 0)", "\(counts["running"] ?? 0)", "\(counts["completed"] ?? 0)"])], empty: ""),
            .init(
                title: "Checks (newest first)", header: ["Job", "Checked at", "Status", "Reason", "Result"],
                rows: checks.map { .init(id: $0.job.uuidString, cells: [$0.job.uuidString, RFC3339.format($0.checkedAt), $0.status, $0.reason ?? "–", $0.result], job: $0.job) },
                empty: "No check yet: ml.retrain_check runs daily at 02:00 UTC."),
        ])
    }

    func perform(action: String, id: String, by: String) async throws -> String { "this page has no actions" }
}
