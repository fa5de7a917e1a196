import ConveyorCore
import ConveyorPostgres
import Foundation

/// Handlers' follow-up jobs, inserted into the worker's database with the registry's per-kind defaults.
struct StoreEnqueuer: JobEnqueuer {
    let store: PostgresJobStore
    let registry: HandlerRegistry

    func enqueue(_ jobs: [NewJob]) async throws -> [UUID] {
        for job in jobs {
            do {
                try job.validate()
            } catch {
                throw JobFailure.permanent("a follow-up job of kind \(job.kind) is invalid: \(error)")
            }
        }
        return try await store.insert(jobs, maxAttempts: { registry.defaultMaxAttempts(for: $0) }).inserted
    }
}
