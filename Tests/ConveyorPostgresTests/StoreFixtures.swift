import ConveyorCore
import ConveyorPostgres
import Foundation

extension PostgresJobStore {
    /// Claims from `queue` as worker `w1` with a 5 minute lease.
    func claim(_ queue: String = "default", limit: Int = 100) async throws -> [ClaimedJob] {
        try await claim(queue: queue, limit: limit, worker: "w1", lease: .seconds(300))
    }

    /// The job with `id`, which must exist.
    func require(_ id: UUID) async throws -> JobRecord {
        guard let job = try await job(id: id) else { throw Missing(id: id) }
        return job
    }
}

struct Missing: Error { var id: UUID }
