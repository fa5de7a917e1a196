import Synchronization

/// The worker's "stop claiming" flag, which also wakes every producer waiting for work.
final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var wakers: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    /// Whether a graceful shutdown began.
    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Registers a producer's wake-up; it is called at once if the stop already happened.
    func register(_ waker: @escaping @Sendable () -> Void) {
        let stopped = state.withLock { state -> Bool in
            state.wakers.append(waker)
            return state.stopped
        }
        if stopped { waker() }
    }

    /// Begins the graceful shutdown: sets the flag and wakes every producer.
    func trigger() {
        let wakers = state.withLock { state -> [@Sendable () -> Void] in
            state.stopped = true
            return state.wakers
        }
        for waker in wakers { waker() }
    }
}
