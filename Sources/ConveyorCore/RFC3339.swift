public import Foundation

/// RFC 3339 timestamps (`2026-11-24T02:00:00Z`, with or without fractional seconds, any offset).
public enum RFC3339 {
    /// Parses `text`, or returns `nil` when it is not an RFC 3339 time.
    public static func parse(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
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
