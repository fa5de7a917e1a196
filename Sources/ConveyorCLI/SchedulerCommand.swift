import ArgumentParser
import ConveyorCore
import ConveyorMaintenance
import ConveyorPostgres
import ConveyorWorker
import Foundation
import Logging
import ServiceLifecycle

/// The schedules in effect: declared in code, overridden by `CONVEYOR_SCHEDULES`.
enum ScheduleSettings {
    static func schedules() throws -> [Schedule] {
        let declared = try ConveyorKinds.schedules()
        guard let overrides = Settings.string(nil, env: "CONVEYOR_SCHEDULES") else { return declared }
        do {
            return try Schedule.applying(overrides: overrides, to: declared)
        } catch {
            throw CommandError.configuration(setting: "CONVEYOR_SCHEDULES", reason: "\(error)")
        }
    }
}

/// `conveyor scheduler`: emits cron jobs (one leader at a time) and takes part in maintenance.
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Emit the jobs of cron schedules, exactly once per slot; run 1-3 for availability (one leads).")

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var maintenanceOptions: MaintenanceOptions
    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        let schedules = try ScheduleSettings.schedules()
        _ = try metrics.address()
        let holder = "scheduler-" + Worker.defaultID()
        // The same retention as the workers': whichever process leads prunes.
        let maintenanceConfiguration = try maintenanceOptions.configuration(holder: holder)
        let ttl = maintenanceConfiguration.election.ttl
        let logger = Logger(label: "conveyor.scheduler")
        let registry = ConveyorKinds.registry()
        let endpoint = try await metrics.endpoint(logger: logger)
        try await database.withClient(logger: logger) { client in
            let store = PostgresJobStore(client: client)
            let scheduler = Scheduler(
                schedules: schedules, store: store,
                election: LeaderElection.Configuration(name: "scheduler", holder: holder, ttl: ttl, renewInterval: ttl / 3),
                maxAttempts: { registry.defaultMaxAttempts(for: $0) }, logger: logger)
            let maintenance = Maintenance(configuration: maintenanceConfiguration, store: store)
            try await ServiceRunner.run((endpoint.map { [$0] } ?? []) + [maintenance, scheduler], logger: logger)
        }
    }
}

/// `conveyor schedules`: each schedule with its last handled slot and next three fire times.
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules", abstract: "List the schedules with their last and next three fire times.")

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON lines, one schedule per line.") var json = false

    func run() async throws {
        let schedules = try ScheduleSettings.schedules()
        let states = try await database.withClient(logger: Logger(label: "conveyor.schedules")) { client in
            try await PostgresJobStore(client: client).scheduleStates()
        }
        let now = Date()
        var table = [["NAME", "CRON", "TZ", "KIND", "QUEUE", "ENABLED", "LAST", "NEXT"]]
        for schedule in schedules {
            let next = schedule.enabled ? schedule.cron.next(3, after: now, in: schedule.timeZone).map { RFC3339.format($0, in: schedule.timeZone) } : []
            let last = states[schedule.name].map { RFC3339.format($0, in: schedule.timeZone) }
            if json {
                let object: [String: Any] = [
                    "name": schedule.name, "cron": schedule.cron.text, "tz": schedule.zoneName, "kind": schedule.kind,
                    "queue": schedule.queue, "enabled": schedule.enabled, "last": last ?? NSNull(), "next": next,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                table.append([
                    schedule.name, schedule.cron.text, schedule.zoneName, schedule.kind, schedule.queue,
                    schedule.enabled ? "yes" : "no", last ?? "-", next.joined(separator: " "),
                ])
            }
        }
        if !json { print(TextTable.render(table)) }
    }
}
