import ConveyorCore
import Foundation
import Testing

@Suite("Cron expressions")
struct CronExpressionTests {
    static func next(_ expression: String, from: String, zone: String = "UTC", count: Int = 3) throws -> [String] {
        let cron = try CronExpression(expression)
        let tz = try #require(TimeZone(identifier: zone))
        let start = try #require(RFC3339.parse(from))
        return cron.next(count, after: start, in: tz).map { RFC3339.format($0, in: tz) }
    }

    struct Case: Sendable, CustomStringConvertible {
        var expression: String
        var from: String
        var zone: String = "UTC"
        var expected: [String]
        var description: String { "\(expression) from \(from) in \(zone)" }
    }

    static let cases: [Case] = [
        Case(expression: "0 2 * * *", from: "2026-11-24T12:00:00Z", expected: ["2026-11-25T02:00:00Z", "2026-11-26T02:00:00Z", "2026-11-27T02:00:00Z"]),
        Case(expression: "*/20 * * * *", from: "2026-11-24T12:05:00Z", expected: ["2026-11-24T12:20:00Z", "2026-11-24T12:40:00Z", "2026-11-24T13:00:00Z"]),
        Case(expression: "0 0 29 2 *", from: "2026-01-01T00:00:00Z", expected: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
        Case(expression: "0 12 31 * *", from: "2026-01-31T12:00:00Z", expected: ["2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z"]),
        Case(expression: "0 0 1 1 *", from: "2026-06-01T00:00:00Z", expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        // Steps over ranges, lists.
        Case(expression: "5-40/10 9-17/4 * * *", from: "2026-11-24T00:00:00Z", expected: ["2026-11-24T09:05:00Z", "2026-11-24T09:15:00Z", "2026-11-24T09:25:00Z"]),
        Case(expression: "0 8,12,18 * * *", from: "2026-11-24T12:00:00Z", expected: ["2026-11-24T18:00:00Z", "2026-11-25T08:00:00Z", "2026-11-25T12:00:00Z"]),
        Case(expression: "30 4/6 * * *", from: "2026-11-24T00:00:00Z", expected: ["2026-11-24T04:30:00Z", "2026-11-24T10:30:00Z", "2026-11-24T16:30:00Z"]),
        // The OR rule: the 13th and every Friday. A field starting with * turns it into AND (Vixie cron,
        // cronie's find_jobs), and a stepped * still restricts its own field.
        Case(expression: "0 0 13 * fri", from: "2026-01-01T00:00:00Z", expected: ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"]),
        // The 1st of a month that is a Sunday, Tuesday, Thursday or Saturday (*/2 = 0,2,4,6).
        Case(expression: "0 0 1 * */2", from: "2026-01-01T00:00:00Z", expected: ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-08-01T00:00:00Z"]),
        // Odd days of the month that are Mondays (issue 15's case), not every Monday.
        Case(expression: "0 0 */2 * 1", from: "2026-11-30T00:00:00Z", expected: ["2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z", "2027-01-11T00:00:00Z"]),
        // `*/10` (1, 11, 21, 31) AND Mondays; `1-31/10` does not start with *: OR.
        Case(expression: "0 0 */10 * mon", from: "2026-06-01T00:00:00Z", expected: ["2026-08-31T00:00:00Z", "2026-09-21T00:00:00Z", "2026-12-21T00:00:00Z"]),
        Case(expression: "0 0 1-31/10 * mon", from: "2026-06-01T00:00:00Z", expected: ["2026-06-08T00:00:00Z", "2026-06-11T00:00:00Z", "2026-06-15T00:00:00Z"]),
        Case(expression: "0 0 * * 1-5", from: "2026-11-27T12:00:00Z", expected: ["2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"]),
        // Names and Sunday as 7.
        Case(expression: "0 9 * jan,jul sun", from: "2026-06-30T00:00:00Z", expected: ["2026-07-05T09:00:00Z", "2026-07-12T09:00:00Z", "2026-07-19T09:00:00Z"]),
        Case(expression: "0 9 * * 7", from: "2026-11-24T00:00:00Z", expected: ["2026-11-29T09:00:00Z", "2026-12-06T09:00:00Z", "2026-12-13T09:00:00Z"]),
        Case(expression: "0 0 * * 6-6", from: "2026-11-18T00:00:00Z", expected: ["2026-11-21T00:00:00Z", "2026-11-28T00:00:00Z", "2026-12-05T00:00:00Z"]),
        Case(expression: "0 0 * * MON-wed", from: "2026-11-24T00:00:00Z", expected: ["2026-11-25T00:00:00Z", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"]),
        // Macros.
        Case(expression: "@hourly", from: "2026-11-24T12:30:00Z", expected: ["2026-11-24T13:00:00Z", "2026-11-24T14:00:00Z", "2026-11-24T15:00:00Z"]),
        Case(expression: "@daily", from: "2026-11-24T12:30:00Z", expected: ["2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"]),
        Case(expression: "@midnight", from: "2026-11-24T00:00:00Z", expected: ["2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"]),
        Case(expression: "@weekly", from: "2026-11-24T00:00:00Z", expected: ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"]),
        Case(expression: "@monthly", from: "2026-11-24T00:00:00Z", expected: ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]),
        Case(expression: "@yearly", from: "2026-11-24T00:00:00Z", expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        Case(expression: "@annually", from: "2026-11-24T00:00:00Z", expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        // DST, Europe/Berlin: 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00.
        Case(expression: "30 2 * * *", from: "2026-03-28T00:00:00Z", zone: "Europe/Berlin",
             expected: ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
        Case(expression: "30 2 * * *", from: "2026-10-24T00:00:00Z", zone: "Europe/Berlin",
             expected: ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
        Case(expression: "*/30 2 * * *", from: "2026-03-28T23:00:00Z", zone: "Europe/Berlin",
             expected: ["2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:00:00+02:00"]),
        Case(expression: "0 * * * *", from: "2026-10-24T23:30:00Z", zone: "Europe/Berlin",
             expected: ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]),
        // DST, America/New_York: 2026-03-08 02:00 → 03:00; 2026-11-01 02:00 → 01:00.
        Case(expression: "15 2 * * *", from: "2026-03-07T12:00:00Z", zone: "America/New_York",
             expected: ["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00", "2026-03-10T02:15:00-04:00"]),
        Case(expression: "30 1 * * *", from: "2026-10-31T12:00:00Z", zone: "America/New_York",
             expected: ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]),
        Case(expression: "*/30 1 * * *", from: "2026-11-01T04:50:00Z", zone: "America/New_York",
             expected: ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00"]),
        Case(expression: "0 2 * * *", from: "2026-11-24T00:00:00Z", zone: "Asia/Kolkata",
             expected: ["2026-11-25T02:00:00+05:30", "2026-11-26T02:00:00+05:30", "2026-11-27T02:00:00+05:30"]),
    ]

    @Test("next fire times", arguments: cases)
    func nextFireTimes(_ testCase: Case) throws {
        #expect(try Self.next(testCase.expression, from: testCase.from, zone: testCase.zone) == testCase.expected)
    }

    static let errors: [(String, String)] = [
        ("0 0 * *", "expected 5 fields"),
        ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day-of-month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day-of-week field"),
        ("* * * foo *", "month field \"foo\""),
        ("*/0 * * * *", "step \"0\" must be a positive integer"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty list element"),
        ("@fortnightly", "unknown macro"),
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
    ]

    @Test("parse errors point at the bad field", arguments: errors)
    func parseErrors(_ expression: String, _ message: String) {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(expression) }
        do {
            _ = try CronExpression(expression)
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }

    @Test("an impossible day with a restricted weekday still fires (the OR rule)")
    func orRuleRescuesImpossibleDay() throws {
        #expect(try Self.next("0 0 30 2 mon", from: "2026-02-01T00:00:00Z", count: 1) == ["2026-02-02T00:00:00Z"])
    }
}
