import PostgresNIO

/// Errors of the PostgreSQL layer, with messages safe to show (never a password).
public enum ConveyorStoreError: Error, Sendable, CustomStringConvertible {
    /// A row could not be read back.
    case corruptRow(String)
    /// A statement failed; `message` is the server's message and SQLSTATE, or the client's reason.
    case database(String)
    /// A migration file could not be read or applied.
    case migration(String)
    /// PostgreSQL refused a value (SQLSTATE class 22, data exception; 23, integrity constraint; or 54,
    /// program limit): retrying the same statement cannot succeed.
    case invalidData(String)
    /// PostgreSQL could not be reached or dropped the connection (no server answer, SQLSTATE class 08,
    /// or a server shutting down): retrying later may succeed.
    case unavailable(String)

    public var description: String {
        switch self {
        case .corruptRow(let message): "unreadable job row: \(message)"
        case .database(let message): "database error: \(message)"
        case .migration(let message): "migration failed: \(message)"
        case .invalidData(let message): "database refused a value: \(message)"
        case .unavailable(let message): "database unavailable: \(message)"
        }
    }

    /// Whether `error` says the server answered and refused a statement (as opposed to not being
    /// reachable): retrying the same statement is likely to fail again.
    public static func isStatementFailure(_ error: any Error) -> Bool {
        switch error as? ConveyorStoreError {
        case .database?, .invalidData?, .corruptRow?: true
        case .migration?, .unavailable?, nil: false
        }
    }

    /// The error to throw for a PostgresNIO error.
    static func wrap(_ error: any Error) -> ConveyorStoreError {
        guard let error = error as? PSQLError else { return .unavailable(describe(error)) }
        guard let state = error.serverInfo?[.sqlState] else { return .unavailable(describe(error)) }
        if state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("54") { return .invalidData(describe(error)) }
        // 08: connection exception; 57P01–57P03: admin shutdown, crash shutdown, cannot connect now.
        if state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state) { return .unavailable(describe(error)) }
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
    /// `PSQLError.description` is deliberately generic, and the query text is never included. Neither is
    /// a row's content: the detail of data and constraint errors (classes 22 and 23: "Failing row
    /// contains (…)", "Token … is invalid") quotes the values written, which may be anyone's args.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let server = error.serverInfo {
                let message = server[.message] ?? "unknown"
                let state = server[.sqlState] ?? "?"
                var text = "\(message) (SQLSTATE \(state))"
                if let detail = server[.detail], !state.hasPrefix("22"), !state.hasPrefix("23") { text += ": \(detail)" }
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
