import Foundation
import Synchronization

/// Why the worker stops a running job before its handler returns.
enum StopReason: Sendable, Equatable {
    /// The grace period of a shutdown ran out: the job goes back to `available`, attempt not spent.
    case shutdown
    /// The job ran past its kind's timeout: recorded as a timeout failure.
    case timeout(Duration)
}

/// A one-shot channel that tells a running job's executor to stop, and why.
final class StopChannel: Sendable {
    private struct State {
        var reason: StopReason?
        var waiter: CheckedContinuation<StopReason?, Never>?
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Waits for a stop request; returns `nil` when the waiting task is cancelled first.
    func wait() async -> StopReason? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> (Bool, StopReason?) in
                    if state.cancelled { return (true, nil) }
                    if let reason = state.reason { return (true, reason) }
                    state.waiter = continuation
                    return (false, nil)
                }
                if ready.0 { continuation.resume(returning: ready.1) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<StopReason?, Never>? in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Asks the job to stop; the first reason wins.
    func stop(_ reason: StopReason) {
        let waiter = state.withLock { state -> CheckedContinuation<StopReason?, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }
}

/// The jobs a producer is running, each with its stop channel and timeout deadline.
final class RunningJobs: Sendable {
    private struct Entry {
        var channel: StopChannel
        var deadline: ContinuousClock.Instant
        var timeout: Duration
    }

    private let jobs = Mutex<[UUID: Entry]>([:])

    /// How many jobs are running.
    var count: Int { jobs.withLock { $0.count } }

    /// Records a started job that may run for `timeout`; returns its stop channel.
    func start(_ id: UUID, timeout: Duration) -> StopChannel {
        let channel = StopChannel()
        let entry = Entry(channel: channel, deadline: .now + timeout, timeout: timeout)
        jobs.withLock { $0[id] = entry }
        return channel
    }

    /// Forgets a finished job.
    func finish(_ id: UUID) {
        _ = jobs.withLock { $0.removeValue(forKey: id) }
    }

    /// Asks every running job to stop for `reason`.
    func stopAll(_ reason: StopReason) {
        let channels = jobs.withLock { $0.values.map(\.channel) }
        for channel in channels { channel.stop(reason) }
    }

    /// Stops the jobs whose deadline passed; returns the earliest deadline still ahead, if any.
    @discardableResult
    func stopOverdue(now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant? {
        let (overdue, next) = jobs.withLock { jobs -> ([(StopChannel, Duration)], ContinuousClock.Instant?) in
            var overdue: [(StopChannel, Duration)] = []
            var next: ContinuousClock.Instant?
            for entry in jobs.values {
                if entry.deadline <= now {
                    overdue.append((entry.channel, entry.timeout))
                } else if next.map({ entry.deadline < $0 }) ?? true {
                    next = entry.deadline
                }
            }
            return (overdue, next)
        }
        for (channel, timeout) in overdue { channel.stop(.timeout(timeout)) }
        return next
    }
}
