import ConveyorCore
import ConveyorMaintenance
import ConveyorTestSupport
import Foundation
import Synchronization
import Testing

/// Records leadership changes so tests await them instead of sleeping.
final class LeadershipLog: Sendable {
    enum Event: Sendable, Equatable {
        case started(String)
        case stopped(String)
    }

    private let stream = AsyncStream<Event>.makeStream()
    private let stop = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Returns when ``stopAll()`` is called: pass as an election's `until`.
    var stopped: @Sendable () async -> Void {
        { [self] in
            await withCheckedContinuation { continuation in
                let done = stop.withLock { state -> Bool in
                    if !state.done { state.waiters.append(continuation) }
                    return state.done
                }
                if done { continuation.resume() }
            }
        }
    }

    /// Stops every election waiting on ``stopped``.
    func stopAll() {
        let waiters = stop.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func record(_ event: Event) { stream.continuation.yield(event) }

    /// Waits for the next event.
    func next() async -> Event? {
        for await event in stream.stream { return event }
        return nil
    }

    /// The body a leader runs: records its start and its end (by cancellation).
    func body(_ name: String) -> @Sendable () async -> Void {
        { [self] in
            record(.started(name))
            await withTaskCancellationHandler {
                for await _ in AsyncStream<Never>.makeStream().stream {}
            } onCancel: {
                self.record(.stopped(name))
            }
        }
    }
}

@Suite("Leader election")
struct LeaderElectionTests {
    @Test("the lease row is exclusive while fresh, renewable by its holder, and taken over once expired")
    func leaseRow() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            #expect(try await store.acquireLeadership("maintenance", holder: "a", ttl: .seconds(15)))
            #expect(try await store.acquireLeadership("maintenance", holder: "b", ttl: .seconds(15)) == false)
            clock.advance(by: 10)
            #expect(try await store.acquireLeadership("maintenance", holder: "a", ttl: .seconds(15)), "the holder renews")
            clock.advance(by: 14)
            #expect(try await store.acquireLeadership("maintenance", holder: "b", ttl: .seconds(15)) == false)
            #expect(try await store.leader("maintenance") == "a")
            clock.advance(by: 1.001)
            #expect(try await store.leader("maintenance") == nil)
            #expect(try await store.acquireLeadership("maintenance", holder: "b", ttl: .seconds(15)), "expired: taken over")
            #expect(try await store.acquireLeadership("maintenance", holder: "a", ttl: .seconds(15)) == false)
            try await store.resignLeadership("maintenance", holder: "a")
            #expect(try await store.leader("maintenance") == "b", "only the holder can resign")
            try await store.resignLeadership("maintenance", holder: "b")
            #expect(try await store.acquireLeadership("maintenance", holder: "a", ttl: .seconds(15)))
        }
    }

    @Test("one of two processes leads; when it stops, it resigns and the other takes over")
    func failover() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            let log = LeadershipLog()
            func election(_ name: String) -> LeaderElection {
                LeaderElection(
                    configuration: .init(holder: name, ttl: .seconds(30), renewInterval: .milliseconds(50)),
                    store: store, logger: TestDatabase.logger)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await election("a").run(until: log.stopped, leading: log.body("a")) }
                #expect(await log.next() == .started("a"))
                group.addTask { await election("b").run(until: log.stopped, leading: log.body("b")) }
                // b polls every 50 ms but never leads while a renews (ttl 30 s, so only a resignation lets b in).
                #expect(try await store.leader("maintenance") == "a")
                log.stopAll()
                var events: [LeadershipLog.Event] = []
                while events.count < 1, let event = await log.next() { events.append(event) }
                #expect(events == [.stopped("a")])
                try await group.waitForAll()
            }
            #expect(try await store.leader("maintenance") == nil, "a resigned on its way out")

            let log2 = LeadershipLog()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await election("a").run(until: log2.stopped, leading: log2.body("a")) }
                #expect(await log2.next() == .started("a"))
                group.addTask { await election("b").run(until: log2.stopped, leading: log2.body("b")) }
                // Take the row from under a, as a takeover after a stall would: a stops at its next renewal,
                // and b (which sees a fresh row held by someone else) leads once the thief's lease is gone.
                _ = try await client.query("UPDATE conveyor_leaders SET holder = 'thief'", logger: TestDatabase.logger).collect()
                #expect(await log2.next() == .stopped("a"))
                _ = try await client.query("DELETE FROM conveyor_leaders", logger: TestDatabase.logger).collect()
                let next = await log2.next()
                #expect(next == .started("a") || next == .started("b"))
                log2.stopAll()
                try await group.waitForAll()
            }
        }
    }

    @Test("a leader whose renewals stop succeeding stops its work when the lease lapses by its own clock")
    func lapse() async throws {
        try await TestDatabase.withFresh { client, url in
            let log = LeadershipLog()
            // A store whose pool we can break: a separate client we stop while the election runs.
            try await TestDatabase.withClient(url: url) { doomed in
                let store = PostgresJobStore(client: doomed)
                let election = LeaderElection(
                    configuration: .init(holder: "a", ttl: .milliseconds(600), renewInterval: .milliseconds(200)),
                    store: store, logger: TestDatabase.logger)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await election.run(until: log.stopped, leading: log.body("a")) }
                    #expect(await log.next() == .started("a"))
                    // Block every renewal: hold the row's lock, so the UPDATE waits (like a stalled network).
                    try await client.withTransaction(logger: TestDatabase.logger) { connection in
                        _ = try await connection.query("SELECT * FROM conveyor_leaders FOR UPDATE", logger: TestDatabase.logger).collect()
                        #expect(await log.next() == .stopped("a"))
                    }
                    log.stopAll()
                    try await group.waitForAll()
                }
            }
        }
    }
}
