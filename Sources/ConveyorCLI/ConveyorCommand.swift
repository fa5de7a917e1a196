public import ArgumentParser
import ConveyorPostgres
import PostgresNIO
public import ConveyorCore
import Foundation
import Logging

/// `conveyor`: the one binary; each subcommand is a process role or an operator tool.
public struct ConveyorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "Background jobs on PostgreSQL: worker, migrations and operator tools.",
        discussion: """
            Settings come from the environment (12-factor) or the matching flags: DATABASE_URL,
            CONVEYOR_QUEUES, CONVEYOR_CONCURRENCY, CONVEYOR_GRACE_PERIOD, CONVEYOR_LOG_LEVEL.
            Exit status: 0 success, 1 failure, 64 usage error, 69 service unreachable, 78 bad configuration.
            """,
        subcommands: [
            MigrateCommand.self, WorkerCommand.self, EnqueueCommand.self, JobsCommand.self, QueuesCommand.self, RejectedCommand.self,
            LimitsCommand.self, AdChangesCommand.self, MLCommand.self, BenchCommand.self, CronCommand.self, SchedulerCommand.self, SchedulesCommand.self, WebCommand.self,
        ]
    )

    public init() {}

    /// Parses the arguments and runs the command with the stock kinds plus those `kinds` registers, and
    /// the stock schedules plus `schedules`: a service's own `conveyor` with its handlers, every stock
    /// command included (`worker`, `scheduler`, `migrate`, `web`, `jobs`…). Jobs of its kinds get their
    /// kind's defaults (max attempts) at ingest. Errors become one line on stderr and an exit status.
    ///
    /// ```swift
    /// import ConveyorCLI
    /// ConveyorCommand.bootstrapLogging()
    /// await ConveyorCommand.start(kinds: { $0.register(SendReceipt()) }, schedules: [nightly])
    /// ```
    public static func start(
        arguments: [String]? = nil, kinds: @escaping @Sendable (inout HandlerRegistry) -> Void, schedules: [Schedule] = []
    ) async {
        await ConveyorKinds.$extra.withValue(kinds) {
            await ConveyorKinds.$extraSchedules.withValue(schedules) { await start(arguments: arguments) }
        }
    }

    /// Parses the arguments and runs the command; errors become one line on stderr and an exit status.
    public static func start(arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as CommandError {
            FileHandle.standardError.write(Data("conveyor: \(error)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch let error as PSQLError {
            // PSQLError's description is deliberately generic: say what the server said (never a secret).
            FileHandle.standardError.write(Data("conveyor: database error: \(ConveyorStoreError.describe(error))\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }

    /// Installs the log handler at `CONVEYOR_LOG_LEVEL` (default `info`): on stdout, or on stderr when the
    /// command prints `--json`, so a warning logged meanwhile cannot corrupt what scripts parse.
    /// An unknown level stops the process with one line naming the setting (exit 78).
    public static func bootstrapLogging(arguments: [String] = CommandLine.arguments) {
        let level: Logger.Level
        switch logLevel(ProcessInfo.processInfo.environment["CONVEYOR_LOG_LEVEL"]) {
        case .success(let parsed): level = parsed
        case .failure(let error):
            FileHandle.standardError.write(Data("conveyor: \(error)\n".utf8))
            Foundation.exit(error.exitCode)
        }
        let toStandardError = arguments.dropFirst().contains("--json")
        LoggingSystem.bootstrap { label in
            var handler = toStandardError ? StreamLogHandler.standardError(label: label) : StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// `CONVEYOR_LOG_LEVEL`: unset or empty is `info`; otherwise one of swift-log's levels, any case.
    static func logLevel(_ text: String?) -> Result<Logger.Level, CommandError> {
        guard let text, !text.isEmpty else { return .success(.info) }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            return .failure(.configuration(setting: "CONVEYOR_LOG_LEVEL", reason: "\(text.debugDescription) is not a level (\(names))"))
        }
        return .success(level)
    }
}
