import ConveyorCore
import Foundation
import Testing

@testable import ConveyorWorker

@Suite("Direct starts: which ingested jobs a worker starts itself, and how many")
struct DirectStartsTests {
    /// One queue `q` of `concurrency` slots, `running` of them busy, drained or not.
    static func fixture(concurrency: Int, running: Int = 0, drained: Bool = true) -> (DirectStarts, QueueSlots, ProducerInbox) {
        let jobs = RunningJobs()
        for _ in 0..<running {
            _ = jobs.start(
                ClaimedJob(id: UUID(), kind: "k", queue: "q", args: "{}", attempt: 1, maxAttempts: 3, priority: 5), timeout: .seconds(60),
                leaseDeadline: .now + .seconds(30))
        }
        let slots = QueueSlots(concurrency: concurrency, running: jobs)
        slots.update(drained: drained, stopped: false)
        let inbox = ProducerInbox()
        return (DirectStarts(workerID: "w", lease: .seconds(30), queues: ["q": (slots: slots, inbox: inbox)]), slots, inbox)
    }

    @Test("reserves free slots of served queues for due jobs, in priority, run_at, batch order")
    func reserveOrder() {
        let (starts, slots, _) = Self.fixture(concurrency: 5, running: 2)
        let now = Date(timeIntervalSince1970: 1_000_000)
        let jobs = [
            NewJob(kind: "k", queue: "q", priority: 5),  // 0
            NewJob(kind: "k", queue: "other", priority: 0),  // 1: not served here
            NewJob(kind: "k", queue: "q", priority: 1),  // 2
            NewJob(kind: "k", queue: "q", priority: 0, runAt: now.addingTimeInterval(1)),  // 3: not due
            NewJob(kind: "k", queue: "q", priority: 5, runAt: now.addingTimeInterval(-10)),  // 4: due earlier than 0
            NewJob(kind: "k", queue: "q", priority: 9),  // 5: no slot left
        ]
        let reservation = starts.reserve(jobs, now: now, ingester: "i")
        #expect(reservation == StartReservation(rows: [0, 2, 4], slots: ["q": 3]))
        #expect(slots.free == 0 && slots.startReserved == 3)
        // A claim finds nothing left until the start is handed over.
        #expect(slots.reserveClaim(upTo: 5) == 0)
        slots.startReturned(3)
        #expect(slots.reserveClaim(upTo: 5) == 3)
    }

    @Test("nothing is reserved while jobs wait in PostgreSQL (not drained) or the worker is stopping")
    func refused() {
        let (starts, slots, _) = Self.fixture(concurrency: 5, drained: false)
        #expect(starts.reserve([NewJob(kind: "k", queue: "q")], now: Date(), ingester: "i").isEmpty)
        slots.update(drained: true, stopped: true)
        #expect(starts.reserve([NewJob(kind: "k", queue: "q")], now: Date(), ingester: "i").isEmpty)
        slots.update(drained: true, stopped: false)
        #expect(starts.reserve([NewJob(kind: "k", queue: "q")], now: Date(), ingester: "i").rows == [0])
    }

    @Test("a batch is sized to half the free slots, and two ingesters do not plan the same ones")
    func planning() async {
        let (starts, _, _) = Self.fixture(concurrency: 400)
        #expect(await starts.plan(ingester: "a", limit: 500) == 200)
        #expect(await starts.plan(ingester: "b", limit: 500) == 200)
        // No room left for a third: after the short wait it moves a full batch anyway.
        #expect(await starts.plan(ingester: "c", limit: 500) == 500)
        // Reserving (or an empty move) gives the planned room back.
        _ = starts.reserve([], now: Date(), ingester: "a")
        starts.cancelPlan(ingester: "b")
        #expect(await starts.plan(ingester: "c", limit: 500) == 200)
        // Small queues still move batches worth a statement; the limit caps every batch.
        let (small, _, _) = Self.fixture(concurrency: 10)
        #expect(await small.plan(ingester: "a", limit: 500) == DirectStarts.minimumBatch)
        #expect(await small.plan(ingester: "b", limit: 20) == 20)
    }

    @Test("a busy worker holds the batch back until a slot frees, not for the whole wait")
    func planWaitsForRoom() async {
        let (starts, slots, _) = Self.fixture(concurrency: 2, running: 2)
        async let planned = starts.plan(ingester: "a", limit: 500)
        // The producer frees a slot and publishes it (as after a job finishes).
        let running = slots.running.held()
        slots.running.finish(running[0].id, attempt: running[0].attempt)
        slots.update(drained: true, stopped: false)
        starts.signal()
        #expect(await planned == DirectStarts.minimumBatch)
    }

    @Test("the jobs an insert started reach their queue's producer with the slots reserved for them")
    func handover() async {
        let (starts, _, inbox) = Self.fixture(concurrency: 4)
        let reservation = starts.reserve([NewJob(kind: "k", queue: "q"), NewJob(kind: "k", queue: "q")], now: Date(), ingester: "i")
        let job = ClaimedJob(id: UUID(), kind: "k", queue: "q", args: "{}", attempt: 1, maxAttempts: 3, priority: 5)
        starts.started([job], reservation: reservation, sent: .now)
        var events = inbox.events.makeAsyncIterator()
        guard case .started(let jobs, let reserved, _) = await events.next() else {
            Issue.record("expected the started jobs")
            return
        }
        #expect(jobs == [job] && reserved == 2)
    }
}
