import Foundation

/// Reads settings: a flag wins over the environment variable, which wins over the default.
enum Settings {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The flag's value, else the variable's (ignored when empty), else `nil`.
    static func string(_ flag: String?, env: String) -> String? {
        if let flag { return flag }
        if let value = environment[env], !value.isEmpty { return value }
        return nil
    }

    /// An integer setting within `range`.
    static func int(_ flag: Int?, env: String, flagName: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        if let flag {
            guard range.contains(flag) else {
                throw CommandError.configuration(setting: flagName, reason: "\(flag) is out of range \(range.lowerBound)...\(range.upperBound)")
            }
            return flag
        }
        guard let text = environment[env], !text.isEmpty else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw CommandError.configuration(
                setting: env, reason: "\(text.debugDescription) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return parsed
    }

    /// A duration in seconds (fractions allowed) within `range`.
    static func seconds(_ flag: Double?, env: String, flagName: String, default value: Double, range: ClosedRange<Double>) throws -> Duration {
        let seconds: Double
        let setting: String
        if let flag {
            seconds = flag
            setting = flagName
        } else if let text = environment[env], !text.isEmpty {
            guard let parsed = Double(text) else {
                throw CommandError.configuration(setting: env, reason: "\(text.debugDescription) is not a number of seconds")
            }
            seconds = parsed
            setting = env
        } else {
            return .milliseconds(Int64(value * 1000))
        }
        guard range.contains(seconds) else {
            throw CommandError.configuration(setting: setting, reason: "\(seconds) s is out of range \(range.lowerBound)...\(range.upperBound) s")
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}
