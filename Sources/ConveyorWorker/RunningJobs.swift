import Foundation
import Synchronization

/// Why the worker stops a running job before its handler returns.
enum StopReason: Sendable, Equatable {
    /// The grace period of a shutdown ran out: the job goes back to `available`, attempt not spent.
    case shutdown
}

/// The jobs a producer is running, each with a channel to stop it early.
final class RunningJobs: Sendable {
    private let jobs = Mutex<[UUID: AsyncStream<StopReason>.Continuation]>([:])

    /// How many jobs are running.
    var count: Int { jobs.withLock { $0.count } }

    /// Records a started job; the returned stream delivers a stop request, if one comes.
    func start(_ id: UUID) -> AsyncStream<StopReason> {
        let (stream, continuation) = AsyncStream<StopReason>.makeStream(bufferingPolicy: .bufferingNewest(1))
        jobs.withLock { $0[id] = continuation }
        return stream
    }

    /// Forgets a finished job.
    func finish(_ id: UUID) {
        let continuation = jobs.withLock { $0.removeValue(forKey: id) }
        continuation?.finish()
    }

    /// Asks every running job to stop for `reason`.
    func stopAll(_ reason: StopReason) {
        let continuations = jobs.withLock { Array($0.values) }
        for continuation in continuations { continuation.yield(reason) }
    }
}
