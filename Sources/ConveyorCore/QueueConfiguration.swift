import Foundation

/// The queues a worker serves and how many jobs of each it runs at once.
///
/// Parsed from `CONVEYOR_QUEUES` / `--queues`, e.g. `default=20,render=2`; a queue listed without
/// `=N` gets the default concurrency (`CONVEYOR_CONCURRENCY`, default 10).
public struct QueueConfiguration: Sendable, Equatable {
    /// One served queue.
    public struct Queue: Sendable, Equatable {
        /// The queue's name.
        public var name: String
        /// The most jobs of this queue the worker runs at once (1–10,000).
        public var concurrency: Int

        /// Creates a queue entry.
        public init(name: String, concurrency: Int) {
            self.name = name
            self.concurrency = concurrency
        }
    }

    /// The queues, in the order given.
    public var queues: [Queue]

    /// Creates a configuration from already validated entries.
    public init(queues: [Queue]) {
        self.queues = queues
    }

    /// Why a queue list is not acceptable.
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        case empty
        case badName(String)
        case badConcurrency(queue: String, value: String)
        case duplicate(String)

        public var description: String {
            switch self {
            case .empty: "no queue given; expected e.g. default=20,render=2"
            case .badName(let name): "queue name \(name.debugDescription) must match [a-z0-9_-]{1,64}"
            case .badConcurrency(let queue, let value):
                "concurrency \(value.debugDescription) for queue \(queue) must be an integer from 1 to 10000"
            case .duplicate(let name): "queue \(name) is listed twice"
            }
        }
    }

    /// Parses `name[=concurrency],…`.
    public static func parse(_ text: String, defaultConcurrency: Int) throws(ParseError) -> QueueConfiguration {
        var queues: [Queue] = []
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if items.allSatisfy(\.isEmpty) { throw .empty }
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let name = parts[0]
            guard NewJob.isValidQueue(name) else { throw .badName(name) }
            var concurrency = defaultConcurrency
            if parts.count == 2 {
                guard let value = Int(parts[1]), (1...10_000).contains(value) else {
                    throw .badConcurrency(queue: name, value: parts[1])
                }
                concurrency = value
            }
            guard !queues.contains(where: { $0.name == name }) else { throw .duplicate(name) }
            queues.append(Queue(name: name, concurrency: concurrency))
        }
        return QueueConfiguration(queues: queues)
    }

    /// The sum of all queues' concurrency.
    public var totalConcurrency: Int { queues.reduce(0) { $0 + $1.concurrency } }
}
