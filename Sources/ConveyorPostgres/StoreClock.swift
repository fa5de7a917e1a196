import ConveyorCore
import Foundation

/// The time every statement uses as "now": the injected clock's, or PostgreSQL's `now()` when none is set.
///
/// Statements write `coalesce(\(clock.bind)::timestamptz, now())`, so production shares the database's
/// clock across machines and tests control time exactly.
struct StoreClock: Sendable {
    var clock: (any ConveyorClock)?

    /// The value to bind for "now": `nil` lets PostgreSQL decide.
    var bind: Date? { clock?.now() }
}
