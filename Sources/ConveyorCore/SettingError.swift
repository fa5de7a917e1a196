/// A setting that cannot be used, named: what every kind's settings throw from the environment, so
/// `conveyor worker` stops at start with one line naming it (`META_API_VERSION: must look like v23.0`).
public struct SettingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The environment variable (or flag).
    public var setting: String
    public var reason: String
    public var description: String { "\(setting): \(reason)" }

    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }
}
