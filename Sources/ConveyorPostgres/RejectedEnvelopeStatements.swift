import Foundation
import NIOCore
import PostgresNIO

/// `RejectedInsertMany`: quarantines envelopes; one already stored (same derived id) is kept once.
enum RejectedInsertMany {
    static func query(_ rejections: [Rejection], now: Date?) -> PostgresQuery {
        let ids = rejections.map(\.id)
        let payloads = rejections.map { ByteBuffer(data: $0.payload) }
        let reasons = rejections.map(\.reason)
        let sources = rejections.map(\.source)
        let sizes = rejections.map(\.size)
        let hashes = rejections.map(\.sha256)
        return """
            INSERT INTO conveyor_rejected_envelopes (id, payload, size, sha256, reason, received_at, source)
            SELECT r.id, r.payload, r.size, r.sha256, r.reason, coalesce(\(now)::timestamptz, now()), r.source
            FROM UNNEST(\(ids)::uuid[], \(payloads)::bytea[], \(sizes)::int8[], \(hashes)::text[], \(reasons)::text[],
                        \(sources)::text[])
                 WITH ORDINALITY AS r(id, payload, size, sha256, reason, source, ord)
            ORDER BY r.ord
            ON CONFLICT DO NOTHING
            RETURNING id
            """
    }
}

/// `RejectedList`, `RejectedGet`, `RejectedPurge`: the quarantine's admin reads and clean-up.
enum RejectedStatements {
    static let columns = "id, seq, payload, size, sha256, reason, received_at, source"

    static func list(beforeSeq: Int?, limit: Int) -> PostgresQuery {
        if let beforeSeq {
            return "SELECT \(unescaped: columns) FROM conveyor_rejected_envelopes WHERE seq < \(beforeSeq) ORDER BY seq DESC LIMIT \(limit)"
        }
        return "SELECT \(unescaped: columns) FROM conveyor_rejected_envelopes ORDER BY seq DESC LIMIT \(limit)"
    }

    static func get(id: UUID) -> PostgresQuery {
        "SELECT \(unescaped: columns) FROM conveyor_rejected_envelopes WHERE id = \(id)"
    }

    static func purge(ids: [UUID]?, olderThan: Date?) -> PostgresQuery {
        switch (ids, olderThan) {
        case (let ids?, _): "DELETE FROM conveyor_rejected_envelopes WHERE id = ANY(\(ids)::uuid[]) RETURNING id"
        case (nil, let date?): "DELETE FROM conveyor_rejected_envelopes WHERE received_at < \(date) RETURNING id"
        case (nil, nil): "DELETE FROM conveyor_rejected_envelopes RETURNING id"
        }
    }

    /// Deletes up to `limit` envelopes received before `before`, oldest first, skipping rows an
    /// operator's purge holds (retention pruning: small batches, short locks).
    static func prune(before: Date, limit: Int) -> PostgresQuery {
        """
        WITH doomed AS (
            SELECT id FROM conveyor_rejected_envelopes
            WHERE received_at < \(before)
            ORDER BY received_at
            LIMIT \(limit)
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM conveyor_rejected_envelopes AS r WHERE r.id = ANY(ARRAY(SELECT id FROM doomed))
        RETURNING r.id
        """
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [RejectedEnvelope] {
        var result: [RejectedEnvelope] = []
        for try await (id, seq, payload, size, sha256, reason, receivedAt, source) in rows.decode(
            (UUID, Int64, ByteBuffer, Int64?, String?, String, Date, String).self)
        {
            result.append(
                RejectedEnvelope(
                    id: id, seq: Int(seq), payload: Data(buffer: payload), size: size.map { Int($0) }, sha256: sha256, reason: reason,
                    receivedAt: receivedAt, source: source))
        }
        return result
    }
}
