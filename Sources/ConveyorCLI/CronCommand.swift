import ArgumentParser
import ConveyorCore
import Foundation

/// `conveyor cron next EXPR [--from TIME] [--tz ZONE] [--count N]`: an operator's check of an expression.
struct CronCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cron", abstract: "Check cron expressions.", subcommands: [Next.self])

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the next fire times of a cron expression (RFC 3339).",
            discussion: """
                Five fields (minute hour day-of-month month day-of-week) with Vixie cron semantics, or a macro \
                (@hourly, @daily, @weekly, @monthly, @yearly). Example: conveyor cron next '0 2 * * *' --tz Europe/Berlin
                """)

        @Argument(help: "The expression, quoted.") var expression: String
        @Option(help: "Start after this time (RFC 3339; default now).") var from: String?
        @Option(help: "IANA time zone the expression is read in (default UTC).") var tz = "UTC"
        @Option(help: "How many fire times (default 5).") var count = 5

        func run() async throws {
            let cron: CronExpression
            do {
                cron = try CronExpression(expression)
            } catch {
                throw CommandError.configuration(setting: "expression", reason: error.description)
            }
            guard let zone = TimeZone(identifier: tz) else {
                throw CommandError.configuration(setting: "--tz", reason: "\(tz.debugDescription) is not an IANA time zone (e.g. Europe/Berlin)")
            }
            var start = Date()
            if let from {
                guard let parsed = RFC3339.parse(from) else {
                    throw CommandError.configuration(setting: "--from", reason: "\(from.debugDescription) is not an RFC 3339 time")
                }
                start = parsed
            }
            guard (1...1000).contains(count) else {
                throw CommandError.configuration(setting: "--count", reason: "\(count) is out of range 1...1000")
            }
            for fire in cron.next(count, after: start, in: zone) {
                print(RFC3339.format(fire, in: zone))
            }
        }
    }
}
