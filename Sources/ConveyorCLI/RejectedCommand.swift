import ArgumentParser
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging

/// `conveyor rejected list|show|purge`: the quarantine of envelopes that could not become jobs.
struct RejectedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejected",
        abstract: "Inspect and purge quarantined envelopes (malformed or invalid pushes).",
        subcommands: [List.self, Show.self, Purge.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List quarantined envelopes, newest first.")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "At most this many (default 50).") var limit = 50
        @Option(help: "Page: only envelopes quarantined before the one with this seq.") var before: Int?
        @Flag(help: "Print JSON lines.") var json = false

        func run() async throws {
            let (before, limit) = (self.before, max(1, min(self.limit, 10_000)))
            let rejected = try await database.withClient(logger: Logger(label: "conveyor.rejected")) { client in
                try await PostgresJobStore(client: client).rejectedEnvelopes(beforeSeq: before, limit: limit)
            }
            if json {
                for envelope in rejected { print(RejectedOutput.json(envelope)) }
                return
            }
            var rows = [["ID", "RECEIVED", "BYTES", "REASON"]]
            for envelope in rejected {
                rows.append([
                    envelope.id.uuidString.lowercased(), RFC3339.format(envelope.receivedAt), String(envelope.payload.count),
                    String(envelope.reason.prefix(80)),
                ])
            }
            print(rejected.isEmpty ? "no rejected envelopes" : TextTable.render(rows))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one quarantined envelope with its raw bytes.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The envelope id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let uuid = try JobIDs.parse([id])[0]
            let envelope = try await database.withClient(logger: Logger(label: "conveyor.rejected")) { client in
                try await PostgresJobStore(client: client).rejectedEnvelope(id: uuid)
            }
            guard let envelope else { throw CommandError.failed("no rejected envelope with id \(id)") }
            if json {
                print(RejectedOutput.json(envelope))
                return
            }
            print("id:        \(envelope.id.uuidString.lowercased())")
            print("received:  \(RFC3339.format(envelope.receivedAt))")
            print("source:    \(TerminalText.escape(envelope.source))")
            print("reason:    \(TerminalText.escape(envelope.reason))")
            if envelope.isTruncated {
                print("bytes:     \(envelope.size) (the first \(envelope.payload.count) are kept)")
            } else {
                print("bytes:     \(envelope.size)")
            }
            if let sha256 = envelope.sha256 { print("sha256:    \(sha256)") }
            print("payload:   \(RejectedOutput.printable(envelope.payload))")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete quarantined envelopes: by id, older than N hours, or all.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Envelope ids.") var ids: [String] = []
        @Option(name: .customLong("older-than-hours"), help: "Every envelope quarantined more than this many hours ago.") var olderThanHours: Double?
        @Flag(help: "Every envelope.") var all = false

        func run() async throws {
            let ids = try JobIDs.parse(self.ids)
            let cutoff = olderThanHours.map { Date().addingTimeInterval(-$0 * 3600) }
            let modes = (ids.isEmpty ? 0 : 1) + (cutoff == nil ? 0 : 1) + (all ? 1 : 0)
            guard modes == 1 else {
                throw CommandError.configuration(setting: "target", reason: "give envelope ids, --older-than-hours H or --all (exactly one)")
            }
            let count = try await database.withClient(logger: Logger(label: "conveyor.rejected")) { client in
                try await PostgresJobStore(client: client).purgeRejected(ids: ids.isEmpty ? nil : ids, olderThan: cutoff)
            }
            print("purged \(count) envelope\(count == 1 ? "" : "s")")
        }
    }
}

enum RejectedOutput {
    /// The payload as text when it is UTF-8 (control characters escaped), else as hex.
    static func printable(_ payload: Data) -> String {
        if let text = String(data: payload, encoding: .utf8) { return TerminalText.escape(text) }
        return "(not UTF-8) hex " + payload.prefix(4096).map { String(format: "%02x", $0) }.joined()
    }

    static func json(_ envelope: RejectedEnvelope) -> String {
        var object: [String: Any] = [
            "id": envelope.id.uuidString.lowercased(), "seq": envelope.seq, "reason": envelope.reason,
            "received_at": RFC3339.format(envelope.receivedAt), "source": envelope.source,
            "payload_base64": envelope.payload.base64EncodedString(), "size": envelope.size, "truncated": envelope.isTruncated,
        ]
        if let sha256 = envelope.sha256 { object["sha256"] = sha256 }
        if let text = String(data: envelope.payload, encoding: .utf8) { object["payload"] = text }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
