import ConveyorCore
import ConveyorPostgres
import Foundation

extension PostgresJobStore {
    /// Claims from `queue` as worker `w1` with a 5 minute lease.
    func claim(_ queue: String = "default", limit: Int = 100) async throws -> [ClaimedJob] {
        try await claim(queue: queue, limit: limit, worker: "w1", lease: .seconds(300))
    }
}
