import Crypto
public import Foundation

/// An envelope the ingester could not accept, kept with its raw bytes (DESIGN §2, quarantine).
public struct RejectedEnvelope: Sendable, Equatable {
    /// Its id (derived from the ingest batch and position).
    public var id: UUID
    /// Insertion order (paging cursor).
    public var seq: Int
    /// The bytes as pushed: all of them, or the first ``Rejection/maxStoredBytes`` when ``isTruncated``.
    public var payload: Data
    /// The envelope's full length in bytes.
    public var size: Int
    /// The SHA-256 of the whole envelope, lowercase hex (`nil` for rows quarantined before it was kept).
    public var sha256: String?
    /// Why it was rejected.
    public var reason: String
    /// When it was quarantined.
    public var receivedAt: Date
    /// The ingest batch it came from.
    public var source: String

    /// Whether ``payload`` holds only a prefix of the envelope.
    public var isTruncated: Bool { payload.count < size }

    /// Creates a record.
    public init(
        id: UUID, seq: Int, payload: Data, size: Int? = nil, sha256: String? = nil, reason: String, receivedAt: Date, source: String
    ) {
        self.id = id
        self.seq = seq
        self.payload = payload
        self.size = size ?? payload.count
        self.sha256 = sha256
        self.reason = reason
        self.receivedAt = receivedAt
        self.source = source
    }
}

/// An envelope to quarantine: a bounded prefix of its bytes, its length and its SHA-256.
public struct Rejection: Sendable, Equatable {
    /// The most bytes of an envelope the quarantine stores: 64 KiB (enough to see what went wrong; the
    /// length and hash identify the rest).
    public static let maxStoredBytes = 64 << 10

    /// Its id (derived from the ingest batch and position).
    public var id: UUID
    /// The bytes as pushed, at most ``maxStoredBytes``.
    public var payload: Data
    /// The envelope's full length.
    public var size: Int
    /// The SHA-256 of the whole envelope, lowercase hex.
    public var sha256: String
    /// Why. NUL characters are replaced (PostgreSQL text cannot hold them).
    public var reason: String
    /// The ingest batch it came from.
    public var source: String

    /// A rejection of `payload`, the whole envelope (stored up to ``maxStoredBytes``).
    public init(id: UUID, payload: Data, reason: String, source: String) {
        self.init(
            id: id, prefix: payload.prefix(Self.maxStoredBytes), size: payload.count,
            sha256: Self.hex(SHA256.hash(data: payload)), reason: reason, source: source)
    }

    /// A rejection of an envelope known only by its first bytes, its length and its hash (one read in
    /// chunks, too large to hold).
    public init(id: UUID, prefix: Data, size: Int, sha256: String, reason: String, source: String) {
        self.id = id
        self.payload = Data(prefix.prefix(Self.maxStoredBytes))
        self.size = size
        self.sha256 = sha256
        self.reason = reason.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")
        self.source = source.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")
    }

    /// Lowercase hex of a digest.
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
