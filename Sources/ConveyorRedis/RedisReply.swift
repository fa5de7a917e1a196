public import Foundation

/// A Redis reply, binary-safe.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string (raw bytes).
    case bulk(Data)
    /// A status reply such as `OK`.
    case status(String)
    /// An integer reply.
    case integer(Int)
    /// An array reply.
    case array([RedisReply])
    /// The null reply.
    case null
    /// An error reply (`-ERR …`): the command failed, the connection is fine.
    case error(String)

    /// The reply as UTF-8 text, for bulk and status replies.
    public var string: String? {
        switch self {
        case .bulk(let data): String(data: data, encoding: .utf8)
        case .status(let text): text
        default: nil
        }
    }

    /// The reply as an integer, for integer replies.
    public var int: Int? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The elements of an array reply (empty for null).
    public var elements: [RedisReply] {
        switch self {
        case .array(let elements): elements
        default: []
        }
    }
}
