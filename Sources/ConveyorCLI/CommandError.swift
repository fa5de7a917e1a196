/// Why a command stops: printed as one line on stderr, with a distinct exit status.
public enum CommandError: Error, CustomStringConvertible {
    /// A setting is missing or malformed (exit 78, EX_CONFIG). `setting` names the variable or flag.
    case configuration(setting: String, reason: String)
    /// A service the command needs is unreachable (exit 69, EX_UNAVAILABLE).
    case unavailable(String)
    /// The command ran and failed (exit 1).
    case failed(String)

    public var description: String {
        switch self {
        case .configuration(let setting, let reason): "\(setting): \(reason)"
        case .unavailable(let reason): reason
        case .failed(let reason): reason
        }
    }

    /// The process exit status for this error.
    public var exitCode: Int32 {
        switch self {
        case .configuration: 78
        case .unavailable: 69
        case .failed: 1
        }
    }
}
