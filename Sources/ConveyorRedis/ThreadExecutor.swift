import Foundation

/// A serial executor that runs every job on one dedicated thread.
///
/// hiredis calls block (connect, `BLMOVE`, every reply read). An actor whose executor is this one runs
/// them on its own thread, so the cooperative pool never blocks (STACK-NOTES: two blocked `BLMOVE`s on
/// the pool froze every task of the process on two cores).
///
/// `@unchecked Sendable` is safe: the only mutable state (`jobs`, `stopped`) is read and written while
/// holding `condition`'s lock, and the thread is the only consumer.
final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    /// Starts the thread, named `name` (visible in debuggers and `top -H`).
    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread exit once the queued jobs have run.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
        }
    }
}
