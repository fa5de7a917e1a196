import PostgresNIO

/// Errors of the PostgreSQL layer, with messages safe to show (never a password).
public enum ConveyorStoreError: Error, Sendable, CustomStringConvertible {
    /// A row could not be read back.
    case corruptRow(String)
    /// A statement failed; `message` is the server's message and SQLSTATE, or the client's reason.
    case database(String)
    /// A migration file could not be read or applied.
    case migration(String)
    /// PostgreSQL refused a value (SQLSTATE class 22, data exception, or 54, program limit): retrying
    /// the same statement cannot succeed.
    case invalidData(String)

    public var description: String {
        switch self {
        case .corruptRow(let message): "unreadable job row: \(message)"
        case .database(let message): "database error: \(message)"
        case .migration(let message): "migration failed: \(message)"
        case .invalidData(let message): "database refused a value: \(message)"
        }
    }

    /// The error to throw for a PostgresNIO error.
    static func wrap(_ error: any Error) -> ConveyorStoreError {
        if let error = error as? PSQLError, let state = error.serverInfo?[.sqlState],
            state.hasPrefix("22") || state.hasPrefix("54")
        {
            return .invalidData(describe(error))
        }
        return .database(describe(error))
    }

    /// Whether `error` is PostgreSQL's unique violation (SQLSTATE 23505), directly or as a transaction's cause.
    static func isUniqueViolation(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            return error.closureError.map(isUniqueViolation) ?? false
        }
        return (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    /// Describes a PostgresNIO error for operators: server message and SQLSTATE, or the client-side code.
    /// `PSQLError.description` is deliberately generic, and the query text is never included.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let server = error.serverInfo {
                let message = server[.message] ?? "unknown"
                let state = server[.sqlState] ?? "?"
                var text = "\(message) (SQLSTATE \(state))"
                if let detail = server[.detail] { text += ": \(detail)" }
                return text
            }
            if let underlying = error.underlying {
                return "\(error.code): \(underlying)"
            }
            return "\(error.code)"
        }
        return String(describing: error)
    }
}
