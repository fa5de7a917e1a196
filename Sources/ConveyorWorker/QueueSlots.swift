import Synchronization

/// A queue's slots, shared by its producer (claims) and the ingesters of its process (direct starts),
/// so the two never promise the same slot: free = concurrency − running − reserved by claims in flight −
/// reserved by direct starts in flight, read and reserved under one lock.
final class QueueSlots: Sendable {
    private struct State {
        var claimReserved = 0
        var startReserved = 0
        /// The producer's last claim came back short and no new work was announced since: no job of
        /// this queue is known to wait in PostgreSQL.
        var drained = false
        var stopped = false
    }

    let concurrency: Int
    let running: RunningJobs
    private let state = Mutex(State())

    init(concurrency: Int, running: RunningJobs) {
        self.concurrency = concurrency
        self.running = running
    }

    /// Slots neither running nor reserved.
    var free: Int { state.withLock { free(in: $0) } }

    /// Slots reserved for direct starts whose jobs have not been handed over yet.
    var startReserved: Int { state.withLock { $0.startReserved } }

    /// Reserves up to `limit` free slots for a claim; returns how many.
    func reserveClaim(upTo limit: Int) -> Int {
        state.withLock { state in
            let count = max(0, min(limit, free(in: state)))
            state.claimReserved += count
            return count
        }
    }

    /// A claim for `count` slots returned (call after its jobs are recorded as running).
    func claimReturned(_ count: Int) {
        state.withLock { $0.claimReserved -= count }
    }

    /// Reserves up to `limit` slots for jobs inserted already claimed — only while no job of the queue
    /// is known to wait and the worker is not stopping; returns how many.
    func reserveStart(upTo limit: Int) -> Int {
        state.withLock { state in
            guard state.drained, !state.stopped else { return 0 }
            let count = max(0, min(limit, free(in: state)))
            state.startReserved += count
            return count
        }
    }

    /// A direct start for `count` slots was handed over (call after its jobs are recorded as running).
    func startReturned(_ count: Int) {
        state.withLock { $0.startReserved -= count }
    }

    /// What the producer knows: whether the queue is drained, whether the worker is stopping.
    func update(drained: Bool, stopped: Bool) {
        state.withLock { state in
            state.drained = drained
            state.stopped = stopped
        }
    }

    /// Free slots a direct start could take now (0 unless drained and not stopping), and whether the
    /// queue has work waiting in PostgreSQL as far as its producer knows.
    var room: (startable: Int, waiting: Bool, stopped: Bool) {
        state.withLock { state in
            (state.drained && !state.stopped ? max(0, free(in: state)) : 0, !state.drained, state.stopped)
        }
    }

    private func free(in state: State) -> Int {
        concurrency - running.count - state.claimReserved - state.startReserved
    }
}
