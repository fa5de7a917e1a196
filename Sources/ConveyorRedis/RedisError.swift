/// Redis failures, with messages safe to show (never a password).
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Connecting failed (refused, timed out, unresolvable host).
    case connectFailed(String)
    /// The connection broke or timed out mid-command; the next command reconnects.
    case connectionLost(String)
    /// `AUTH` or `SELECT` was refused.
    case setupFailed(String)
    /// The server answered the command with an error reply.
    case commandFailed(String)
    /// The connection was closed by its owner.
    case closed

    public var description: String {
        switch self {
        case .connectFailed(let reason): "cannot connect to Redis: \(reason)"
        case .connectionLost(let reason): "lost the Redis connection: \(reason)"
        case .setupFailed(let reason): "Redis refused the connection setup: \(reason)"
        case .commandFailed(let reason): "Redis command failed: \(reason)"
        case .closed: "the Redis connection is closed"
        }
    }
}
