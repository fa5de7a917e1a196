import ConveyorCore
import Foundation
import Synchronization

/// The latest progress each running job reported and that is not written yet. Handlers report as often
/// as they like; the lease keeper takes what is pending about once a second and writes it with a lease
/// renewal (``LeaseKeeper``), so reports are coalesced per job and never cost a statement each.
final class ProgressBuffer: Sendable {
    private let pending = Mutex<[UUID: (attempt: Int, progress: JobProgress)]>([:])

    /// Keeps `progress` as the job's latest, replacing an unwritten earlier one.
    func report(_ id: UUID, attempt: Int, _ progress: JobProgress) {
        pending.withLock { $0[id] = (attempt, progress) }
    }

    /// Whether any report waits to be written.
    var hasPending: Bool { pending.withLock { !$0.isEmpty } }

    /// Takes every pending report.
    func take() -> [UUID: (attempt: Int, progress: JobProgress)] {
        pending.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
    }

    /// Puts back reports a failed write took, unless a newer one arrived meanwhile.
    func restore(_ reports: [UUID: (attempt: Int, progress: JobProgress)]) {
        pending.withLock { pending in
            for (id, report) in reports where pending[id] == nil { pending[id] = report }
        }
    }
}
