public import Foundation

/// RFC 3339 timestamps (`2026-11-24T02:00:00Z`, with or without fractional seconds, any offset).
public enum RFC3339 {
    /// The earliest time Conveyor accepts: 0001-01-01T00:00:00Z as Foundation reads it (its calendar is
    /// Julian before 1582, so this is two days before the proleptic Gregorian date PostgreSQL means).
    public static let earliest = Date(timeIntervalSince1970: -62_135_769_600)
    /// The first time Conveyor no longer accepts: 10000-01-01T00:00:00Z (the last accepted year is 9999).
    ///
    /// `ISO8601DateFormatter` reads six-digit years, and PostgresNIO's `Date` encoding (microseconds
    /// since 2000 as `Int64`) traps beyond about year 294,000: every date that enters is checked
    /// against this range first.
    public static let latest = Date(timeIntervalSince1970: 253_402_300_800)

    /// Whether `date` lies in years 1 through 9999 (UTC); `false` for NaN and infinite times.
    public static func isSupported(_ date: Date) -> Bool {
        date >= earliest && date < latest
    }

    /// Parses `text`, or returns `nil` when it is not an RFC 3339 time of years 1 through 9999.
    public static func parse(_ text: String) -> Date? {
        // An RFC 3339 time is about 20–35 characters; a long string is not one (and costs the formatter).
        guard text.utf8.count <= 64 else { return nil }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return isSupported(date) ? date : nil }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text).flatMap { isSupported($0) ? $0 : nil }
    }

    /// Formats `date` in UTC, to the second (`2026-11-24T02:00:00Z`).
    public static func format(_ date: Date, in zone: TimeZone = TimeZone(identifier: "UTC")!) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = zone
        return formatter.string(from: date)
    }

    /// Formats `date` in UTC with milliseconds (`2026-11-24T02:00:00.123Z`).
    public static func formatPrecise(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
