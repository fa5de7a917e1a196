import ConveyorWeb
import Foundation
import ServiceLifecycle
import Logging

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

    /// A boolean environment variable: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; unset or empty is the default.
    static func bool(env: String, default value: Bool) throws -> Bool {
        guard let text = environment[env], !text.isEmpty else { return value }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw CommandError.configuration(setting: env, reason: "\(text.debugDescription) must be 1 or 0 (true/false, yes/no, on/off)")
        }
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

    /// A duration written as seconds or with a unit (`90`, `90s`, `15m`, `24h`, `30d`), or `off`/`never`
    /// for none (`nil`).
    static func duration(_ flag: String?, env: String, flagName: String, default value: Duration?) throws -> Duration? {
        guard let text = flag ?? environment[env].flatMap({ $0.isEmpty ? nil : $0 }) else { return value }
        let setting = flag != nil ? flagName : env
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "off" || trimmed == "never" { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(trimmed)
        var unit = 1.0
        if let last = number.last, let factor = units[last] {
            unit = factor
            number = number.dropLast()
        }
        guard let amount = Double(number), amount > 0, amount.isFinite else {
            throw CommandError.configuration(
                setting: setting, reason: "\(text.debugDescription) is not a duration (e.g. 90s, 15m, 24h, 30d, or off)")
        }
        return .milliseconds(Int64(amount * unit * 1000))
    }

    /// Who runs an admin command, recorded on the jobs it changes: `$USER@host`, or `operator`.
    static func operatorName() -> String {
        string(nil, env: "USER").map { "\($0)@\(ProcessInfo.processInfo.hostName)" } ?? "operator"
    }

    /// A `HOST:PORT` setting (`[::1]:8080` for IPv6), or nil when unset or `off`.
    static func address(_ flag: String?, env: String, flagName: String) throws -> (host: String, port: Int)? {
        let setting = flag == nil ? env : flagName
        guard let text = string(flag, env: env), text != "off" else { return nil }
        guard let colon = text.lastIndex(of: ":") else {
            throw CommandError.configuration(setting: setting, reason: "'\(text)' is not HOST:PORT (e.g. 127.0.0.1:9464)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw CommandError.configuration(setting: setting, reason: "'\(text)' is not HOST:PORT with a port from 0 to 65535")
        }
        return (host, port)
    }

    /// An HTTP server (``WebServer``) for `handler`; an address that is taken or not local is a one-line
    /// error naming `setting`, at start. `onRunning` hears the bound port.
    static func listen(
        host: String, port: Int, setting: String, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) async throws -> any Service {
        do {
            try await WebServer.checkBind(host: host, port: port)
        } catch {
            throw CommandError.configuration(setting: setting, reason: "cannot listen on \(host):\(port): \(error)")
        }
        return WebServer.application(host: host, port: port, logger: logger, onRunning: onRunning, handler: handler)
    }
}
