import ConveyorCore
import Foundation
import Synchronization

/// Why the worker stops a running job before its handler returns.
enum StopReason: Sendable, Equatable {
    /// The grace period of a shutdown ran out: the job goes back to `available`, attempt not spent.
    case shutdown
    /// The job ran past its kind's timeout: recorded as a timeout failure.
    case timeout(Duration)
    /// Someone asked for the job to be cancelled (`conveyor jobs cancel`): it ends `cancelled`.
    case cancelled(String)
    /// The job is no longer held by this worker (rescued after its lease lapsed, or the lease could
    /// not be renewed in time): its result would be fenced off, so it stops.
    case leaseLost
}

/// A one-shot channel that tells a running job's executor to stop, and why.
final class StopChannel: Sendable {
    private struct State {
        var reason: StopReason?
        var observer: (@Sendable (StopReason) -> Void)?
    }

    private let state = Mutex(State())

    /// Calls `observer` once with the first stop reason: at once if the job was already asked to stop.
    /// One observer per channel (the executor's race registers it); a callback rather than an awaiting
    /// task: one task fewer per job on the hot path.
    func onStop(_ observer: @escaping @Sendable (StopReason) -> Void) {
        let reason = state.withLock { state -> StopReason? in
            if let reason = state.reason { return reason }
            state.observer = observer
            return nil
        }
        if let reason { observer(reason) }
    }

    /// Asks the job to stop; the first reason wins.
    func stop(_ reason: StopReason) {
        let observer = state.withLock { state -> (@Sendable (StopReason) -> Void)? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.observer = nil }
            return state.observer
        }
        observer?(reason)
    }
}

/// The jobs a producer is running, each with its stop channel, timeout deadline and lease deadline.
final class RunningJobs: Sendable {
    private struct Entry {
        var attempt: Int
        var channel: StopChannel
        var deadline: ContinuousClock.Instant
        var timeout: Duration
        /// When the lease is known to lapse, by this process's clock (renewed by heartbeats).
        var leaseDeadline: ContinuousClock.Instant
    }

    private let jobs = Mutex<[UUID: Entry]>([:])

    /// How many jobs are running.
    var count: Int { jobs.withLock { $0.count } }

    /// Records a started job that may run for `timeout` and whose lease lapses at `leaseDeadline`;
    /// returns its stop channel.
    func start(_ job: ClaimedJob, timeout: Duration, leaseDeadline: ContinuousClock.Instant) -> StopChannel {
        let channel = StopChannel()
        let entry = Entry(
            attempt: job.attempt, channel: channel, deadline: .now + timeout, timeout: timeout, leaseDeadline: leaseDeadline)
        // Still running an earlier attempt of the same job here means that attempt lost its lease (the
        // job was rescued and claimed again): stop it, its result would be fenced off anyway.
        let previous = jobs.withLock { jobs in
            defer { jobs[job.id] = entry }
            return jobs[job.id]?.channel
        }
        previous?.stop(.leaseLost)
        return channel
    }

    /// Forgets a finished attempt (not a later attempt of the same job that started meanwhile).
    func finish(_ id: UUID, attempt: Int) {
        jobs.withLock { jobs in
            if jobs[id]?.attempt == attempt { jobs[id] = nil }
        }
    }

    /// The running jobs and the attempts they hold (what a heartbeat extends).
    func held() -> [(id: UUID, attempt: Int)] {
        jobs.withLock { $0.map { (id: $0.key, attempt: $0.value.attempt) } }
    }

    /// Records a heartbeat sent at `sent`: the leases of `extended` now last until `sent + lease`.
    func renewed(_ extended: Set<UUID>, until deadline: ContinuousClock.Instant) {
        jobs.withLock { jobs in
            for id in extended { jobs[id]?.leaseDeadline = deadline }
        }
    }

    /// Asks one job to stop for `reason` (no-op if it is not running here, or not at `attempt`).
    func stop(_ id: UUID, attempt: Int? = nil, _ reason: StopReason) {
        let channel = jobs.withLock { jobs -> StopChannel? in
            guard let entry = jobs[id], attempt == nil || entry.attempt == attempt else { return nil }
            return entry.channel
        }
        channel?.stop(reason)
    }

    /// Asks every running job to stop for `reason`.
    func stopAll(_ reason: StopReason) {
        let channels = jobs.withLock { $0.values.map(\.channel) }
        for channel in channels { channel.stop(reason) }
    }

    /// Stops the jobs past their timeout, and those whose lease lapsed (a worker cut off from the
    /// database must not keep running jobs that another worker may run again).
    func stopOverdue(now: ContinuousClock.Instant = .now) {
        let overdue = jobs.withLock { jobs -> [(StopChannel, StopReason)] in
            var overdue: [(StopChannel, StopReason)] = []
            for entry in jobs.values {
                if entry.deadline <= now {
                    overdue.append((entry.channel, .timeout(entry.timeout)))
                } else if entry.leaseDeadline <= now {
                    overdue.append((entry.channel, .leaseLost))
                }
            }
            return overdue
        }
        for (channel, reason) in overdue { channel.stop(reason) }
    }
}

/// The first result of an attempt's race (handler finished, or stop requested), awaited once.
final class RaceResult: Sendable {
    private struct State {
        var value: JobExecutor.Race?
        var waiter: CheckedContinuation<JobExecutor.Race, Never>?
    }

    private let state = Mutex(State())

    /// Sets the result unless one is set already.
    func set(_ value: JobExecutor.Race) {
        let waiter = state.withLock { state -> CheckedContinuation<JobExecutor.Race, Never>? in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: value)
    }

    /// Waits for the result (one waiter only).
    func wait() async -> JobExecutor.Race {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> JobExecutor.Race? in
                if let value = state.value { return value }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
