public import Foundation
import Synchronization

/// Every circuit breaker of this process by upstream, as the worker publishes them (`conveyor_circuits`,
/// shown by the dashboard): each ``Upstream`` enters its breaker here and reports its transitions.
public enum CircuitBoard {
    public struct Entry: Sendable, Equatable {
        public var upstream: String
        public var state: CircuitBreaker.State
        public var since: Date
        public var openUntil: Date?
    }

    private static let entries = Mutex<[String: Entry]>([:])

    /// The breakers' states now, by upstream name.
    public static func snapshot() -> [Entry] {
        entries.withLock { Array($0.values) }.sorted { $0.upstream < $1.upstream }
    }

    static func enter(_ upstream: String, at now: Date) {
        entries.withLock { entries in
            if entries[upstream] == nil { entries[upstream] = Entry(upstream: upstream, state: .closed, since: now, openUntil: nil) }
        }
    }

    static func report(_ upstream: String, state: CircuitBreaker.State, at now: Date, openUntil: Date?) {
        entries.withLock { $0[upstream] = Entry(upstream: upstream, state: state, since: now, openUntil: state == .open ? openUntil : nil) }
    }
}
