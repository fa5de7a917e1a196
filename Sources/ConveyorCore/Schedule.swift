public import Foundation

/// A periodic job, declared in code by the kind that needs it (DESIGN §6): e.g. the retraining check,
/// daily at 02:00 UTC. `conveyor scheduler` emits one job per slot, exactly once.
public struct Schedule: Sendable, Equatable {
    /// What to do about slots missed while no scheduler ran.
    public enum CatchUp: Sendable, Equatable {
        /// Emit the most recent missed slot once (the default).
        case latest
        /// Emit every missed slot no older than the window.
        case all(within: Duration)
        /// Emit nothing missed; resume with the next slot.
        case none
    }

    /// Unique name, `[a-z0-9_.-]{1,100}`; part of every emitted job's unique key.
    public var name: String
    public var cron: CronExpression
    public var timeZone: TimeZone
    public var kind: String
    /// The job's args (a JSON object).
    public var args: String
    public var queue: String
    public var catchUp: CatchUp
    public var enabled: Bool

    /// The zone's name for listings: `UTC` for UTC, which Foundation on Linux names `GMT` (the same clock).
    public var zoneName: String { timeZone.identifier == "GMT" ? "UTC" : timeZone.identifier }

    /// Creates a schedule; throws when the expression or zone is invalid.
    public init(
        name: String, cron: String, timeZone: String = "UTC", kind: String, args: String = "{}", queue: String = "default",
        catchUp: CatchUp = .latest, enabled: Bool = true
    ) throws {
        guard NewJob.isValidKind(name) else { throw ScheduleError("schedule name \(name.debugDescription) must match [a-z0-9_.-]{1,100}") }
        do {
            self.cron = try CronExpression(cron)
        } catch {
            throw ScheduleError("schedule \(name): \(error.description)")
        }
        guard let zone = TimeZone(identifier: timeZone) else {
            throw ScheduleError("schedule \(name): \(timeZone.debugDescription) is not an IANA time zone")
        }
        self.name = name
        self.timeZone = zone
        self.kind = kind
        self.args = args
        self.queue = queue
        self.catchUp = catchUp
        self.enabled = enabled
    }

    /// The job for `slot`: same insert path as any job, with a unique key and an id derived from the
    /// schedule and the slot, so a slot is inserted once however many schedulers emit it.
    public func job(for slot: Date) -> NewJob {
        let key = "schedule:\(name):\(RFC3339.format(slot))"
        return NewJob(kind: kind, args: args, queue: queue, runAt: slot, uniqueKey: key, tags: ["schedule:\(name)"], id: StableID.make(key))
    }

    /// What to emit at `now`: the slots (per the catch-up policy), and the time through which slots are
    /// handled, to record so none is considered again (`nil`: nothing to record). `lastHandled` is the newest slot
    /// already handled, `nil` for a schedule never run: it starts with the slot due now, if any.
    public func due(lastHandled: Date?, now: Date, limit: Int = 10_000) -> (emit: [Date], through: Date?) {
        guard enabled else { return ([], nil) }
        // A slot is due for a minute after its time when there is no history.
        let cursorStart = lastHandled ?? now.addingTimeInterval(-60)
        var slots: [Date] = []
        var cursor = cursorStart
        while let slot = cron.next(after: cursor, in: timeZone), slot <= now {
            if slots.count == limit { slots.removeFirst() }
            slots.append(slot)
            cursor = slot
        }
        // Nothing due: a schedule without history records that it was seen now, so slots missed
        // from here on (downtime) are recognised as missed.
        guard let newest = slots.last else { return ([], lastHandled == nil ? now : nil) }
        guard slots.count > 1 || now.timeIntervalSince(newest) >= 60 else { return ([newest], newest) }
        // Slots were missed (downtime): the policy decides.
        switch catchUp {
        case .latest:
            return ([newest], newest)
        case .all(let window):
            return (slots.filter { now.timeIntervalSince($0) <= window.seconds }, newest)
        case .none:
            return (now.timeIntervalSince(newest) < 60 ? [newest] : [], newest)
        }
    }
}

/// A schedule that cannot be declared or overridden as written.
public struct ScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Schedule {
    /// Applies configuration overrides (`CONVEYOR_SCHEDULES`, a JSON object by schedule name) to the
    /// schedules declared in code, without a rebuild:
    ///
    /// ```json
    /// {"ml.retrain-check": {"cron": "0 3 * * *", "tz": "Europe/Berlin"}, "conveyor.canary": "off"}
    /// ```
    /// Each entry is `"off"`, `"on"`, or an object with any of `cron`, `tz`, `queue`, `args` (object),
    /// `enabled` (bool), `catch_up` (`"latest"`, `"none"`, or `"all:SECONDS"`). Unknown names are an
    /// error (a typo must not silently leave a schedule as it was).
    public static func applying(overrides json: String, to schedules: [Schedule]) throws -> [Schedule] {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)), case .object(let entries) = value else {
            throw ScheduleError("CONVEYOR_SCHEDULES must be a JSON object keyed by schedule name")
        }
        var result = schedules
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            guard let index = result.firstIndex(where: { $0.name == name }) else {
                throw ScheduleError("CONVEYOR_SCHEDULES: no schedule named \(name.debugDescription) (known: \(schedules.map(\.name).joined(separator: ", ")))")
            }
            var schedule = result[index]
            switch entry {
            case .string("off"): schedule.enabled = false
            case .string("on"): schedule.enabled = true
            case .object(let fields):
                for (key, field) in fields {
                    switch (key, field) {
                    case ("cron", .string(let text)):
                        do { schedule.cron = try CronExpression(text) } catch { throw ScheduleError("CONVEYOR_SCHEDULES \(name): \(error.description)") }
                    case ("tz", .string(let text)):
                        guard let zone = TimeZone(identifier: text) else { throw ScheduleError("CONVEYOR_SCHEDULES \(name): \(text.debugDescription) is not an IANA time zone") }
                        schedule.timeZone = zone
                    case ("queue", .string(let text)) where NewJob.isValidQueue(text):
                        schedule.queue = text
                    case ("args", .object):
                        schedule.args = String(decoding: try JSONEncoder().encode(field), as: UTF8.self)
                    case ("enabled", .bool(let flag)):
                        schedule.enabled = flag
                    case ("catch_up", .string(let text)):
                        if text == "latest" {
                            schedule.catchUp = .latest
                        } else if text == "none" {
                            schedule.catchUp = .none
                        } else if text.hasPrefix("all:"), let seconds = Double(text.dropFirst(4)), seconds > 0 {
                            schedule.catchUp = .all(within: .milliseconds(Int64(seconds * 1000)))
                        } else {
                            throw ScheduleError("CONVEYOR_SCHEDULES \(name): catch_up must be latest, none or all:SECONDS")
                        }
                    default:
                        throw ScheduleError("CONVEYOR_SCHEDULES \(name): unsupported or malformed setting \(key.debugDescription)")
                    }
                }
            default:
                throw ScheduleError("CONVEYOR_SCHEDULES \(name): expected \"off\", \"on\" or an object")
            }
            result[index] = schedule
        }
        return result
    }
}
