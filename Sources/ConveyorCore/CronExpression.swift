public import Foundation

/// A five-field cron expression with Vixie cron semantics: `minute hour day-of-month month day-of-week`,
/// each a `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of those; month and
/// weekday names (`jan`, `mon`); weekday `7` is Sunday like `0`; and the macros `@yearly`/`@annually`,
/// `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
///
/// Day-of-month and day-of-week are OR-ed when neither starts with `*`, and AND-ed when either does, as
/// Vixie cron and cronie do (`find_jobs` tests both bit sets when `DOM_STAR` or `DOW_STAR` is set): so
/// `0 0 1 * mon` runs on the 1st and on every Monday, `0 0 * * mon` on every Monday, and `0 0 */2 * 1`
/// on the odd days of the month that are Mondays (a `*/2` still restricts its own field).
///
/// Next fire times are computed in a time zone, with daylight-saving transitions handled like Vixie
/// cron: a job at a fixed time skipped by spring-forward runs right after the change; a fixed-time job
/// in the repeated fall-back hour runs once. Jobs whose minute or hour field starts with `*` follow
/// the clock as it is (they do not run in the skipped hour, and do run in both repeated hours).
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// Why an expression does not parse (or can never fire); names the field.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The allowed values of each field.
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 (Sunday) … 6.
    public let daysOfWeek: Set<Int>
    /// Whether the day-of-month / day-of-week field starts with `*` (then the two are AND-ed, not OR-ed).
    public let domUnrestricted: Bool
    public let dowUnrestricted: Bool
    /// Whether the minute or hour field starts with `*` (clock-following across DST changes).
    public let followsClock: Bool
    /// The text it was parsed from.
    public let text: String

    public var description: String { text }

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`; throws a ``ParseError`` naming the bad field.
    public init(_ text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            guard let macro = Self.macros[trimmed.lowercased()] else {
                throw ParseError(description: "unknown macro \(trimmed); expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly")
            }
            expanded = macro
        }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0).lowercased() }
        guard fields.count == 5 else {
            throw ParseError(description: "expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        minutes = try Self.field(fields[0], name: "minute", range: 0...59, names: [])
        hours = try Self.field(fields[1], name: "hour", range: 0...23, names: [])
        daysOfMonth = try Self.field(fields[2], name: "day-of-month", range: 1...31, names: [])
        months = try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames, firstNameValue: 1)
        let weekdays = try Self.field(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames)
        daysOfWeek = Set(weekdays.map { $0 % 7 })
        domUnrestricted = fields[2].hasPrefix("*")
        dowUnrestricted = fields[4].hasPrefix("*")
        followsClock = fields[0].hasPrefix("*") || fields[1].hasPrefix("*")
        self.text = trimmed
        if domUnrestricted == false && dowUnrestricted {
            // Only the day of month decides: it must exist in one of the months.
            let longest = months.map { Self.maxDays(month: $0) }.max() ?? 0
            guard daysOfMonth.contains(where: { $0 <= longest }) else {
                throw ParseError(description: "\(trimmed) can never fire: no month in the month field has day \(daysOfMonth.min() ?? 0)")
            }
        }
    }

    private static func maxDays(month: Int) -> Int {
        [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    private static func field(
        _ text: String, name: String, range: ClosedRange<Int>, names: [String], firstNameValue: Int = 0
    ) throws(ParseError) -> Set<Int> {
        func fail(_ reason: String) -> ParseError {
            ParseError(description: "\(name) field \(text.debugDescription): \(reason)")
        }
        func value(_ token: Substring) throws(ParseError) -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw fail("\(number) is out of range \(range.lowerBound)-\(range.upperBound)") }
                return number
            }
            if let index = names.firstIndex(of: String(token)) { return index + firstNameValue }
            throw fail("\(token.debugDescription) is not a number\(names.isEmpty ? "" : " or a name")")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw fail("empty list element") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("more than one step in \(part.debugDescription)") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else { throw fail("step \(pieces[1].debugDescription) must be a positive integer") }
                step = parsed
            }
            let base = pieces[0]
            var low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw fail("range \(base) runs backwards") }
            } else {
                low = try value(base)
                // `a/n` means from a to the end, in steps of n.
                high = pieces.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    /// Whether a calendar day matches the day fields: OR-ed when neither starts with `*`, else AND-ed
    /// (a bare `*` matches every day, so then only the other field decides).
    func matchesDay(day: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let domMatch = daysOfMonth.contains(day)
        let dowMatch = daysOfWeek.contains(weekday)
        return domUnrestricted || dowUnrestricted ? domMatch && dowMatch : domMatch || dowMatch
    }

    /// The first fire time strictly after `date`, in `zone`; `nil` if none within 30 years (an
    /// expression that can never fire in practice, like `0 0 31 2,4 *` with a restricted weekday… none
    /// exist: such cases are rejected by the parser, so `nil` only guards against bugs).
    public func next(after date: Date, in zone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
        // Wall-clock times are handled as if they were UTC ("floating"), starting a few hours before
        // `date`'s wall time so that a repeated fall-back hour is seen.
        func wall(of instant: Date) -> Date { instant.addingTimeInterval(TimeInterval(zone.secondsFromGMT(for: instant))) }
        // Near a daylight-saving change, look from a few hours back so a repeated hour is seen.
        let nearChange = zone.nextDaylightSavingTimeTransition(after: date.addingTimeInterval(-86400))
            .map { $0 < date.addingTimeInterval(86400) } ?? false
        let startWall = wall(of: date).addingTimeInterval(nearChange ? -3 * 3600 : 0)
        var cursor = Date(timeIntervalSince1970: (startWall.timeIntervalSince1970 / 60).rounded(.down) * 60)
        let limit = cursor.addingTimeInterval(30 * 366 * 86400)
        var best: Date?
        while let match = nextMatchingWall(from: cursor, limit: limit) {
            for instant in instants(forWall: match, in: zone) where instant > date {
                if best.map({ instant < $0 }) ?? true { best = instant }
            }
            // Far from a daylight-saving change, wall time and instants run in the same order.
            if !nearChange, let best { return best }
            // DST moves wall time by at most a few hours: well past the best's wall time, nothing earlier can come.
            if let best, match.timeIntervalSince(wall(of: best)) > 4 * 3600 { return best }
            cursor = match.addingTimeInterval(60)
        }
        return best
    }

    /// The next wall-clock minute at or after `start` whose fields match (skipping whole months, days
    /// and hours that cannot match). Pure arithmetic on the proleptic Gregorian calendar.
    private func nextMatchingWall(from start: Date, limit: Date) -> Date? {
        let startMinutes = Int((start.timeIntervalSince1970 / 60).rounded(.up))
        var (year, month, day) = Self.civil(fromDays: Int((Double(startMinutes) / 1440).rounded(.down)))
        let minuteOfDay = startMinutes - Self.days(year, month, day) * 1440
        var (hour, minute) = (minuteOfDay / 60, minuteOfDay % 60)
        let sortedHours = hours.sorted(), sortedMinutes = minutes.sorted()
        let limitDays = Int(limit.timeIntervalSince1970 / 86400)
        while Self.days(year, month, 1) <= limitDays {
            if !months.contains(month) || day > Self.daysIn(year, month) {
                (day, hour, minute) = (1, 0, 0)
                month += 1
                if month > 12 { (month, year) = (1, year + 1) }
                continue
            }
            let dayNumber = Self.days(year, month, day)
            let weekday = ((dayNumber % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
            guard matchesDay(day: day, month: month, weekday: weekday), let h = sortedHours.first(where: { $0 >= hour }) else {
                (day, hour, minute) = (day + 1, 0, 0)
                continue
            }
            if h != hour { (hour, minute) = (h, 0) }
            guard let m = sortedMinutes.first(where: { $0 >= minute }) else {
                (hour, minute) = (hour + 1, 0)
                if hour > 23 { (day, hour) = (day + 1, 0) }
                continue
            }
            return Date(timeIntervalSince1970: TimeInterval(dayNumber * 86400 + hour * 3600 + m * 60))
        }
        return nil
    }

    private static func daysIn(_ year: Int, _ month: Int) -> Int {
        if month == 2 { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28 }
        return maxDays(month: month)
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    private static func days(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day number (inverse of ``days(_:_:_:)``).
    private static func civil(fromDays z: Int) -> (Int, Int, Int) {
        let z = z + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The instants a wall-clock time names in `zone`, by the Vixie rules: one normally; for a time in
    /// the repeated fall-back hour both (clock-following jobs) or the first (fixed-time jobs); for a time
    /// skipped by spring-forward none (clock-following) or the instant of the change (fixed-time).
    private func instants(forWall wall: Date, in zone: TimeZone) -> [Date] {
        let seconds = wall.timeIntervalSince1970
        let offsets = Set([-86400.0, 0, 86400].map { zone.secondsFromGMT(for: Date(timeIntervalSince1970: seconds + $0)) })
        let valid = offsets.map { Date(timeIntervalSince1970: seconds - TimeInterval($0)) }
            .filter { TimeInterval(zone.secondsFromGMT(for: $0)) == seconds - $0.timeIntervalSince1970 }
            .sorted()
        if !valid.isEmpty { return followsClock ? valid : [valid[0]] }
        if followsClock { return [] }
        // Skipped: run right after the change.
        let before = zone.secondsFromGMT(for: Date(timeIntervalSince1970: seconds - 86400))
        let guess = Date(timeIntervalSince1970: seconds - TimeInterval(before) - 4 * 3600)
        return zone.nextDaylightSavingTimeTransition(after: guess).map { [$0] } ?? []
    }

    /// The next `count` fire times after `date`.
    public func next(_ count: Int, after date: Date, in zone: TimeZone = TimeZone(identifier: "UTC")!) -> [Date] {
        var result: [Date] = []
        var cursor = date
        while result.count < count, let fire = next(after: cursor, in: zone) {
            result.append(fire)
            cursor = fire
        }
        return result
    }
}
