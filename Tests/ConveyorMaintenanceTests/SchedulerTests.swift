import ConveyorCore
import ConveyorMaintenance
import ConveyorTestSupport
import Foundation
import Metrics
import MetricsTestKit
import PostgresNIO
import Testing

@Suite("Scheduler (manual clock)")
struct SchedulerTests {
    static let start = RFC3339.parse("2026-11-23T00:00:30Z")!

    static func schedules() throws -> [Schedule] {
        [
            // Ticks come every 5–13 minutes: the minutely schedule catches up on every slot since the last tick.
            try Schedule(name: "minutely", cron: "* * * * *", kind: "conveyor.noop", catchUp: .all(within: .seconds(3600))),
            try Schedule(name: "hourly", cron: "@hourly", kind: "conveyor.noop"),
            try Schedule(name: "daily", cron: "0 2 * * *", kind: "conveyor.noop"),
            try Schedule(name: "berlin", cron: "30 2 * * *", timeZone: "Europe/Berlin", kind: "conveyor.noop"),
        ]
    }

    static func scheduler(
        _ store: PostgresJobStore, _ clock: ManualClock, _ schedules: [Schedule], holder: String,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) -> Scheduler {
        Scheduler(
            schedules: schedules, store: store, election: .init(name: "scheduler", holder: holder), clock: clock, metrics: metrics,
            logger: TestDatabase.logger)
    }

    /// Slot times of the jobs emitted per schedule.
    static func emitted(_ client: PostgresClient) async throws -> [String: [Date]] {
        var result: [String: [Date]] = [:]
        let rows = try await client.query(
            "SELECT substring(unique_key from '^schedule:([^:]+):'), run_at FROM conveyor_jobs ORDER BY run_at", logger: TestDatabase.logger)
        for try await (name, slot) in rows.decode((String, Date).self) { result[name, default: []].append(slot) }
        return result
    }

    @Test("two schedulers side by side through a simulated week emit every slot exactly once")
    func twoSchedulersOneWeek() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock(Self.start)
            let store = PostgresJobStore(client: client, clock: clock)
            let schedules = try Self.schedules()
            let a = Self.scheduler(store, clock, schedules, holder: "a")
            let b = Self.scheduler(store, clock, schedules, holder: "b")
            // Both tick (concurrently, no election: the unique slot ids alone must prevent doubles), at
            // uneven steps of 5–13 minutes, for 7 days.
            let random = SeededRandomSource(seed: 7)
            let end = Self.start.addingTimeInterval(7 * 86400)
            var lastTick = clock.now()
            while clock.now() < end {
                lastTick = clock.now()
                async let first = a.tick()
                async let second = b.tick()
                _ = try await (first, second)
                clock.advance(by: 300 + 480 * random.nextUnit())
            }
            let emitted = try await Self.emitted(client)
            for schedule in schedules {
                var expected: [Date] = []
                var cursor = Self.start.addingTimeInterval(-60)
                while let slot = schedule.cron.next(after: cursor, in: schedule.timeZone), slot <= lastTick {
                    expected.append(slot)
                    cursor = slot
                }
                let got = emitted[schedule.name] ?? []
                #expect(got == expected, "\(schedule.name): \(got.count) emitted, \(expected.count) slots")
            }
            // The last tick falls within the week's last 13 minutes.
            #expect((7 * 1440 - 14...7 * 1440).contains(emitted["minutely"]?.count ?? 0))
            #expect(emitted["hourly"]?.count == 7 * 24 && emitted["daily"]?.count == 7 && emitted["berlin"]?.count == 7)
        }
    }

    @Test("after three days down, each schedule's missed slots are emitted per its policy, once")
    func downtime() async throws {
        try await TestDatabase.withFresh { client, _ in
            let clock = ManualClock(Self.start)
            let store = PostgresJobStore(client: client, clock: clock)
            let schedules = [
                try Schedule(name: "latest", cron: "0 2 * * *", kind: "conveyor.noop"),
                try Schedule(name: "all", cron: "0 * * * *", kind: "conveyor.noop", catchUp: .all(within: .seconds(6 * 3600))),
                try Schedule(name: "skip", cron: "0 2 * * *", kind: "conveyor.noop", catchUp: .none),
            ]
            let metrics = TestMetrics()
            let scheduler = Self.scheduler(store, clock, schedules, holder: "a", metrics: metrics)
            try await scheduler.tick()
            // At 00:00:30 only the hourly slot of 00:00 is due (30 s ago).
            #expect(try await Self.emitted(client) == ["all": [Self.start.addingTimeInterval(-30)]])
            // Three days and 5 hours later (now 05:00:30 on the 26th).
            clock.advance(by: 3 * 86400 + 5 * 3600)
            try await scheduler.tick()
            try await scheduler.tick()  // a second pass (or a restart) emits nothing more
            let emitted = try await Self.emitted(client)
            #expect(emitted["latest"] == [RFC3339.parse("2026-11-26T02:00:00Z")!])
            #expect(emitted["all"] == [Self.start.addingTimeInterval(-30)] + (0...5).map { RFC3339.parse("2026-11-26T0\($0):00:00Z")! })
            #expect(emitted["skip"] == nil)
            #expect(metrics.counterTotal(label: "conveyor_scheduled_jobs_total", dimensions: [("schedule", "all")]) == 7)
            #expect(metrics.counterTotal(label: "conveyor_scheduled_jobs_total", dimensions: [("schedule", "latest")]) == 1)
            #expect(metrics.counterTotal(label: "conveyor_scheduled_jobs_total") == 8)
            // The next regular slot comes as usual.
            clock.set(RFC3339.parse("2026-11-27T02:00:10Z")!)
            try await Self.scheduler(store, clock, schedules, holder: "restarted").tick()
            let after = try await Self.emitted(client)
            #expect(after["latest"]?.count == 2 && after["skip"] == [RFC3339.parse("2026-11-27T02:00:00Z")!])
        }
    }

    @Test("overrides from configuration change, disable or reject schedules")
    func overrides() throws {
        let declared = try Self.schedules()
        let changed = try Schedule.applying(
            overrides: #"{"daily": {"cron": "0 3 * * *", "tz": "Europe/Berlin", "queue": "ml", "catch_up": "all:3600"}, "minutely": "off"}"#,
            to: declared)
        let daily = try #require(changed.first { $0.name == "daily" })
        #expect(daily.cron.text == "0 3 * * *" && daily.timeZone.identifier == "Europe/Berlin" && daily.queue == "ml")
        #expect(daily.catchUp == .all(within: .seconds(3600)))
        #expect(changed.first { $0.name == "minutely" }?.enabled == false)
        #expect(changed.first { $0.name == "minutely" }?.due(lastHandled: nil, now: Self.start).emit == [])
        #expect(throws: ScheduleError.self) { try Schedule.applying(overrides: #"{"nope": "off"}"#, to: declared) }
        #expect(throws: ScheduleError.self) { try Schedule.applying(overrides: #"{"daily": {"cron": "61 * * * *"}}"#, to: declared) }
        #expect(throws: ScheduleError.self) { try Schedule.applying(overrides: "[]", to: declared) }
    }
}
