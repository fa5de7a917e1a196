import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor limits [list]|pause|resume`: kinds' cluster-wide limits and paused limit keys.
struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Cluster-wide limits per kind and paused limit keys; pause and resume a key.",
        subcommands: [List.self, Pause.self, Resume.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each limited kind (as the workers declared it) with its running jobs, and each paused key with the time left (the default).")

        @OptionGroup var database: DatabaseOptions
        @Flag(help: #"Print JSON lines: {"limit": …} per kind, then {"pause": …} per paused key."#) var json = false

        func run() async throws {
            let (limits, pauses, now) = try await database.withClient(logger: Logger(label: "conveyor.limits")) { client in
                let store = PostgresJobStore(client: client)
                return (try await store.kindLimits(), try await store.keyPauses(), try await store.now())
            }
            if json {
                for limit in limits { print(#"{"limit":\#(limit.json)}"#) }
                for pause in pauses { print(#"{"pause":\#(pause.json(now: now))}"#) }
                return
            }
            if limits.isEmpty {
                print("no kind limits (declare them with JobKindOptions(concurrencyLimit:rateLimit:) or CONVEYOR_LIMITS)")
            } else {
                var table = [["KIND", "RUNNING", "CONCURRENCY", "RATE", "DECLARED BY", "AT"]]
                for limit in limits {
                    table.append([
                        TerminalText.escape(limit.kind), String(limit.running), limit.concurrency.map(String.init) ?? "–", limit.rateText,
                        TerminalText.escape(limit.declaredBy), RFC3339.format(limit.declaredAt),
                    ])
                }
                print(TextTable.render(table))
            }
            if pauses.isEmpty {
                print("no paused keys")
            } else {
                var table = [["PAUSED KEY", "LEFT", "UNTIL", "WAITING", "BY", "REASON"]]
                for pause in pauses {
                    table.append([
                        TerminalText.escape(pause.key), Duration.seconds(max(0, pause.until.timeIntervalSince(now))).readable,
                        RFC3339.format(pause.until), String(pause.waiting), TerminalText.escape(pause.pausedBy),
                        TerminalText.escape(String(pause.reason.prefix(120))),
                    ])
                }
                print(TextTable.render(table))
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold every job with a limit key until a time (e.g. an upstream's maintenance window); running ones finish.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The limit key.") var key: String
        @Option(help: "How long, e.g. 20m, 2h, 90s.") var duration: String
        @Option(help: "Why, recorded.") var reason = "paused by an operator"
        @Option(help: "Who pauses, recorded (env: USER; default: operator@HOST).") var by: String?

        func run() async throws {
            try LimitKey.check(key)
            guard let hold = try Settings.duration(duration, env: "", flagName: "--duration", default: nil), hold > .zero else {
                throw CommandError.configuration(setting: "--duration", reason: "expected a positive duration such as 20m")
            }
            let who = by ?? Settings.operatorName()
            let until = try await database.withClient(logger: Logger(label: "conveyor.limits")) { client in
                let store = PostgresJobStore(client: client)
                let until = try await store.now().addingTimeInterval(hold.seconds)
                try await store.pause(key: key, until: until, reason: reason, by: who)
                return until
            }
            print("paused \(TerminalText.escape(key)) until \(RFC3339.format(until)) (a longer pause in place is kept)")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a key's pause at once: its jobs start again on every worker.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The limit key.") var key: String

        func run() async throws {
            try LimitKey.check(key)
            let resumed = try await database.withClient(logger: Logger(label: "conveyor.limits")) { client in
                try await PostgresJobStore(client: client).resume(key: key)
            }
            print(resumed ? "resumed \(TerminalText.escape(key))" : "\(TerminalText.escape(key)) was not paused")
        }
    }
}

enum LimitKey {
    static func check(_ key: String) throws {
        guard (1...255).contains(key.unicodeScalars.count), !key.utf8.contains(0) else {
            throw CommandError.configuration(setting: "key", reason: "a limit key has 1 to 255 characters and no NUL")
        }
    }
}
