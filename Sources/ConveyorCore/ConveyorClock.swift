public import Foundation
import Synchronization

/// The wall clock used for job times (`run_at`, leases, history), injected so tests are exact.
///
/// The store passes `now()` to every time-dependent statement; a store without a clock uses
/// PostgreSQL's `now()`, so all machines share the database's clock.
public protocol ConveyorClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// A clock that only moves when told to, for tests.
public final class ManualClock: ConveyorClock {
    private let current: Mutex<Date>

    /// Creates a clock standing at `start`.
    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    /// Sets the clock to `date`.
    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}

/// The machine's clock.
public struct SystemClock: ConveyorClock {
    public init() {}
    public func now() -> Date { Date() }
}
