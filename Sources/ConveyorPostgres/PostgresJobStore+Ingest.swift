public import ConveyorCore
public import Foundation
import NIOCore
import PostgresNIO

extension PostgresJobStore {
    /// The `LISTEN` channel notified (on commit) whenever jobs are inserted; the payload lists their queues.
    public static let insertChannel = JobInsertMany.channel

    /// What one ingest transaction wrote.
    public struct IngestResult: Sendable, Equatable {
        /// Jobs inserted.
        public var inserted: Int
        /// Valid envelopes dropped as duplicates (an id already ingested, or a unique key held by an unfinished job).
        public var duplicates: Int
        /// Envelopes quarantined by this call (a recovered batch's earlier rejections are not counted again).
        public var quarantined: Int
    }

    /// Inserts a batch of jobs and quarantines the rejected envelopes in one transaction.
    public func ingest(
        jobs: [NewJob], rejected: [Rejection], maxAttempts: @escaping @Sendable (String) -> Int
    ) async throws -> IngestResult {
        let jobQuery = jobs.isEmpty ? nil : JobInsertMany.query(jobs, maxAttempts: maxAttempts, now: clock.bind)
        let rejectQuery = rejected.isEmpty ? nil : RejectedInsertMany.query(rejected, now: clock.bind)
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection in
                var inserted = 0, quarantined = 0
                if let jobQuery {
                    for try await _ in try await connection.query(jobQuery, logger: logger).decode(UUID.self) { inserted += 1 }
                }
                if let rejectQuery {
                    for try await _ in try await connection.query(rejectQuery, logger: logger).decode(UUID.self) { quarantined += 1 }
                }
                return IngestResult(inserted: inserted, duplicates: jobs.count - inserted, quarantined: quarantined)
            }
        }
    }

    /// Quarantined envelopes, newest first.
    public func rejectedEnvelopes(beforeSeq: Int? = nil, limit: Int = 50) async throws -> [RejectedEnvelope] {
        try await perform { try await RejectedStatements.decode(client.query(RejectedStatements.list(beforeSeq: beforeSeq, limit: limit), logger: logger)) }
    }

    /// One quarantined envelope.
    public func rejectedEnvelope(id: UUID) async throws -> RejectedEnvelope? {
        try await perform { try await RejectedStatements.decode(client.query(RejectedStatements.get(id: id), logger: logger)) }.first
    }

    /// Deletes quarantined envelopes: these ids, or those older than a date, or all; returns how many.
    public func purgeRejected(ids: [UUID]? = nil, olderThan: Date? = nil) async throws -> Int {
        try await perform {
            var count = 0
            for try await _ in try await client.query(RejectedStatements.purge(ids: ids, olderThan: olderThan), logger: logger).decode(UUID.self) {
                count += 1
            }
            return count
        }
    }

    /// Deletes up to `limit` quarantined envelopes received before `before` (retention); returns how many.
    public func pruneRejected(before: Date, limit: Int = 1000) async throws -> Int {
        try await ids(RejectedStatements.prune(before: before, limit: limit)).count
    }
}
