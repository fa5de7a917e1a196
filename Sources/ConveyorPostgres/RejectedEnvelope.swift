public import Foundation

/// An envelope the ingester could not accept, kept with its raw bytes (DESIGN §2, quarantine).
public struct RejectedEnvelope: Sendable, Equatable {
    /// Its id (derived from the ingest batch and position).
    public var id: UUID
    /// Insertion order (paging cursor).
    public var seq: Int
    /// The bytes exactly as pushed.
    public var payload: Data
    /// Why it was rejected.
    public var reason: String
    /// When it was quarantined.
    public var receivedAt: Date
    /// The ingest batch it came from.
    public var source: String

    /// Creates a record.
    public init(id: UUID, seq: Int, payload: Data, reason: String, receivedAt: Date, source: String) {
        self.id = id
        self.seq = seq
        self.payload = payload
        self.reason = reason
        self.receivedAt = receivedAt
        self.source = source
    }
}

/// An envelope to quarantine.
public struct Rejection: Sendable, Equatable {
    /// Its id (derived from the ingest batch and position).
    public var id: UUID
    /// The bytes exactly as pushed.
    public var payload: Data
    /// Why.
    public var reason: String
    /// The ingest batch it came from.
    public var source: String

    /// Creates a rejection.
    public init(id: UUID, payload: Data, reason: String, source: String) {
        self.id = id
        self.payload = payload
        self.reason = reason
        self.source = source
    }
}
