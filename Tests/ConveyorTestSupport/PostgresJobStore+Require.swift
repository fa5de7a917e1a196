import ConveyorCore
import ConveyorPostgres
import Foundation

extension PostgresJobStore {
    /// The job with `id`, which must exist.
    public func require(_ id: UUID) async throws -> JobRecord {
        guard let job = try await job(id: id) else { throw MissingJob(id: id) }
        return job
    }
}

/// A job the test expected is not in the table.
public struct MissingJob: Error {
    public var id: UUID
}
