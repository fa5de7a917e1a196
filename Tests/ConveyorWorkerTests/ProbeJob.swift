import ConveyorCore
import Foundation
import Synchronization

/// Records what handlers did, so tests await events instead of sleeping.
final class Probe: Sendable {
    private let runs = Mutex<[UUID: Int]>([:])
    private let events = AsyncStream<UUID>.makeStream()
    private let stops = AsyncStream<UUID>.makeStream()

    /// A "hang" handler saw its task cancelled.
    func stopped(_ id: UUID) { stops.continuation.yield(id) }

    /// Waits for the next cancelled "hang" handler; returns its job id.
    func waitForStop() async -> UUID? {
        for await id in stops.stream { return id }
        return nil
    }
    private let gate = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let opened = Atomic<Bool>(false)

    func ran(_ id: UUID) {
        runs.withLock { $0[id, default: 0] += 1 }
        events.continuation.yield(id)
    }

    /// How often each job's handler started.
    var runCounts: [UUID: Int] { runs.withLock { $0 } }

    /// Waits until `count` more handler starts were recorded.
    func waitForRuns(_ count: Int) async {
        guard count > 0 else { return }
        var seen = 0
        for await _ in events.stream {
            seen += 1
            if seen == count { return }
        }
    }

    /// Blocks until ``open()``; returns at once afterwards.
    func waitForGate() async {
        if opened.load(ordering: .acquiring) { return }
        await withCheckedContinuation { continuation in
            let resumeNow = gate.withLock { waiters -> Bool in
                if opened.load(ordering: .acquiring) { return true }
                waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = gate.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            opened.store(true, ordering: .releasing)
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// `test.probe`: behaves as its args say, reporting each start to the probe.
struct ProbeJob: JobHandler {
    struct Args: Codable, Sendable {
        /// complete, fail, fail_once, permanent, retry_after, snooze, cancel, hang, gate
        var mode: String
    }

    static let kind = "test.probe"
    let probe: Probe
    var options: JobKindOptions

    init(probe: Probe, options: JobKindOptions = JobKindOptions()) {
        self.probe = probe
        self.options = options
    }

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        probe.ran(context.id)
        switch args.mode {
        case "fail": throw ProbeFailure()
        case "fail_once": if context.attempt == 1 { throw ProbeFailure() }
        case "permanent": throw JobFailure.permanent("cannot ever work")
        case "retry_after": throw JobFailure.retryAfter(.seconds(42), "rate limited")
        case "snooze": return .snooze(.seconds(30))
        case "cancel": return .cancel(reason: "not needed any more")
        case "hang":
            // Never finishes on its own; ends only when the task is cancelled.
            for await _ in AsyncStream<Never>.makeStream().stream {}
            if Task.isCancelled { probe.stopped(context.id) }
            try Task.checkCancellation()
        case "gate": await probe.waitForGate()
        default: break
        }
        return .completed
    }
}

struct ProbeFailure: Error, CustomStringConvertible {
    var description: String { "probe failure" }
}
