public import ConveyorCore
public import Foundation
import Synchronization

/// A worker's side of direct starts (see ``JobStarter``): hands ingesters of the same process free
/// slots of queues with no job waiting in PostgreSQL, and delivers the jobs they insert already claimed
/// to the queues' producers, which run them like claimed ones.
///
/// Before a batch, an ingester waits while the worker could start nothing new — every queue has jobs
/// waiting in PostgreSQL or less than half its slots free — for at most ``maxWait``; then it moves a full
/// batch anyway (jobs for other processes' queues must keep flowing: a process whose queues are all
/// backlogged still ingests a batch per ``maxWait`` and ingester, 20,000 envelopes/s at the default
/// batch size; one with room in any queue does not wait). With room, the batch is sized to
/// the room (at least ``minimumBatch``, at most half the slots), so it can start whole instead of
/// leaving a backlog that would block the next direct start.
public final class DirectStarts: JobStarter {
    /// The longest an ingester waits for room before moving a batch regardless.
    public static let maxWait = Duration.milliseconds(25)
    /// The smallest batch sized to the room (other queues' envelopes share the ingress). Small enough
    /// that two ingesters' batches overlap at 100 slots too (at 100 it was one batch per round trip);
    /// at 1000 slots and two ingesters the shared harness went from 8,900–11,800 to 13,100–14,800
    /// no-op jobs/s (docs/performance.md).
    public static let minimumBatch = 25

    public let workerID: String
    public let lease: Duration
    /// Kinds that never start directly (their starts are counted cluster-wide by the claim): inserted
    /// `available` like jobs for other queues. Jobs with a limit key never start directly either: the
    /// claim checks the key's pause.
    let claimOnly: Set<String>
    let queues: [String: (slots: QueueSlots, inbox: ProducerInbox)]

    private struct Waiters {
        /// Room each ingester sized its coming batch for (so two ingesters do not plan the same slots).
        var planned: [String: Int] = [:]
        var generation = 0
        var waiting: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let waiters = Mutex(Waiters())

    init(workerID: String, lease: Duration, claimOnly: Set<String> = [], queues: [String: (slots: QueueSlots, inbox: ProducerInbox)]) {
        self.workerID = workerID
        self.lease = lease
        self.claimOnly = claimOnly
        self.queues = queues
    }

    public func plan(ingester: String, limit: Int) async -> Int {
        let deadline = ContinuousClock.now + Self.maxWait
        while true {
            let (generation, plannedByOthers) = waiters.withLock { waiters in
                (waiters.generation, waiters.planned.reduce(0) { $0 + ($1.key == ingester ? 0 : $1.value) })
            }
            var startable = 0, threshold = 0, stopped = true
            for (slots, _) in queues.values {
                let room = slots.room
                stopped = stopped && room.stopped
                if !room.waiting && room.startable > 0 {
                    startable += room.startable
                    threshold += max(1, slots.concurrency / 2)
                }
            }
            if stopped { return limit }
            startable -= plannedByOthers
            if startable > 0 && startable >= threshold - plannedByOthers {
                // At most half the slots per batch, so a second ingester's batch can be on its way while
                // this one's insert runs (one batch filling every slot serialized them: −30 % end to end).
                let size = min(limit, max(min(startable, threshold), Self.minimumBatch))
                let claimed = waiters.withLock { waiters -> Bool in
                    // Another ingester may have planned meanwhile: look again.
                    guard waiters.generation == generation else { return false }
                    waiters.planned[ingester] = min(size, startable)
                    waiters.generation &+= 1
                    return true
                }
                if claimed { return size }
                continue
            }
            if ContinuousClock.now >= deadline {
                cancelPlan(ingester: ingester)
                return limit
            }
            await changed(since: generation, until: deadline)
        }
    }

    /// Returns once some queue could take a direct start (drained, a slot free): for tests that need
    /// the worker settled before they push.
    func waitUntilStartable() async {
        while true {
            let generation = waiters.withLock { $0.generation }
            if queues.values.contains(where: { !$0.slots.room.waiting && $0.slots.room.startable > 0 }) { return }
            await signalled(since: generation)
        }
    }

    public func cancelPlan(ingester: String) {
        waiters.withLock { _ = $0.planned.removeValue(forKey: ingester) }
    }

    public func reserve(_ jobs: [NewJob], now: Date, ingester: String) -> StartReservation {
        defer { cancelPlan(ingester: ingester) }
        var candidates: [String: [(priority: Int, runAt: Date, row: Int)]] = [:]
        for (row, job) in jobs.enumerated() where queues[job.queue] != nil && job.limitKey == nil && !claimOnly.contains(job.kind) {
            let runAt = job.runAt ?? now
            guard runAt <= now else { continue }
            candidates[job.queue, default: []].append((job.priority, runAt, row))
        }
        var reservation = StartReservation()
        for (queue, rows) in candidates {
            guard let slots = queues[queue]?.slots else { continue }
            let count = slots.reserveStart(upTo: rows.count)
            guard count > 0 else { continue }
            let picked = rows.sorted { ($0.priority, $0.runAt, $0.row) < ($1.priority, $1.runAt, $1.row) }.prefix(count)
            reservation.rows += picked.map(\.row)
            reservation.slots[queue] = count
        }
        reservation.rows.sort()
        return reservation
    }

    public func started(_ jobs: [ClaimedJob], reservation: StartReservation, sent: ContinuousClock.Instant) {
        var byQueue: [String: [ClaimedJob]] = [:]
        for job in jobs { byQueue[job.queue, default: []].append(job) }
        for (queue, count) in reservation.slots {
            queues[queue]?.inbox.deliver(.started(byQueue[queue] ?? [], reserved: count, sent: sent))
        }
    }

    /// Something changed in a queue (a producer handled an event): wakes waiting ingesters.
    func signal() {
        let resumed = waiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            waiters.generation &+= 1
            defer { waiters.waiting.removeAll() }
            return Array(waiters.waiting.values)
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Returns after the next ``signal()`` following `generation`, or at `deadline`.
    private func changed(since generation: Int, until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.signalled(since: generation) }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    private func signalled(since generation: Int) async {
        let id = waiters.withLock { waiters -> Int in
            waiters.nextID += 1
            return waiters.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = waiters.withLock { waiters -> Bool in
                    if waiters.generation != generation || Task.isCancelled { return true }
                    waiters.waiting[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let continuation = waiters.withLock { $0.waiting.removeValue(forKey: id) }
            continuation?.resume()
        }
    }
}
