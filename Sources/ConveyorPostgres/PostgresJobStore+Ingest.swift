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
        /// Of ``duplicates``, those whose unique key an unfinished job held (the rest had an id already ingested).
        public var uniqueKeyDuplicates = 0
        /// Envelopes quarantined by this call (a recovered batch's earlier rejections are not counted again).
        public var quarantined: Int
        /// The jobs inserted already claimed, for the worker that asked (see ``StartRequest``).
        public var started: [ClaimedJob] = []

        /// Creates a result.
        public init(inserted: Int = 0, duplicates: Int = 0, uniqueKeyDuplicates: Int = 0, quarantined: Int = 0, started: [ClaimedJob] = []) {
            self.inserted = inserted
            self.duplicates = duplicates
            self.uniqueKeyDuplicates = uniqueKeyDuplicates
            self.quarantined = quarantined
            self.started = started
        }
    }

    /// Jobs of an ingest batch that a worker in the same process will start itself: they are inserted
    /// `running` (attempt 1, leased to `worker` for `lease`), sparing them the claim statement. The
    /// statement starts a row only if its queue is not paused, holds no due `available` job (those come
    /// first), and the row is due; it inserts the others `available`.
    public struct StartRequest: Sendable, Equatable {
        /// Positions in the batch's `jobs`.
        public var rows: [Int]
        /// The worker the started jobs are leased to (`locked_by`).
        public var worker: String
        /// How long the lease lasts unless renewed.
        public var lease: Duration

        /// Creates a request.
        public init(rows: [Int], worker: String, lease: Duration) {
            self.rows = rows
            self.worker = worker
            self.lease = lease
        }
    }

    /// Inserts a batch of jobs and quarantines the rejected envelopes, atomically.
    ///
    /// The common batch — no unique keys — is first inserted without `ON CONFLICT` (cheaper per row, see
    /// `JobInsertMany`); if an id was already ingested (a recovered batch, a producer pushing twice) that
    /// fails as a whole and the batch is written again with the clause, which drops the duplicates. A
    /// batch without rejections is one statement, so it needs no `BEGIN`/`COMMIT` round trips either.
    public func ingest(
        jobs: [NewJob], rejected: [Rejection], maxAttempts: @escaping @Sendable (String) -> Int, start: StartRequest? = nil
    ) async throws -> IngestResult {
        if !jobs.isEmpty, !jobs.contains(where: { $0.uniqueKey != nil }) {
            do {
                return try await ingestOnce(jobs: jobs, rejected: rejected, maxAttempts: maxAttempts, dropDuplicates: false, start: start)
            } catch let error where ConveyorStoreError.isUniqueViolation(error) {
                logger.debug("ingest batch holds an id already ingested; writing it again without the duplicates", metadata: ["jobs": "\(jobs.count)"])
            } catch {
                throw Self.storeError(error)
            }
        }
        return try await perform { try await ingestOnce(jobs: jobs, rejected: rejected, maxAttempts: maxAttempts, dropDuplicates: true, start: start) }
    }

    private func ingestOnce(
        jobs: [NewJob], rejected: [Rejection], maxAttempts: @escaping @Sendable (String) -> Int, dropDuplicates: Bool, start: StartRequest?
    ) async throws -> IngestResult {
        let jobQuery = jobs.isEmpty ? nil : JobInsertMany.query(jobs, maxAttempts: maxAttempts, now: clock.bind, dropDuplicates: dropDuplicates, start: start)
        let rejectQuery = rejected.isEmpty ? nil : RejectedInsertMany.query(rejected, now: clock.bind)
        let logger = self.logger
        @Sendable func write(_ runner: some QueryRunner) async throws -> IngestResult {
            var inserted: [UUID] = [], started: [ClaimedJob] = [], quarantined = 0, byUniqueKey = 0
            if let jobQuery {
                (inserted, started) = try await JobInsertMany.decode(runner.run(jobQuery, logger: logger))
            }
            if inserted.count < jobs.count {
                // Dropped: by id (a row with it exists) or by unique key (none does). Rare, so a second
                // statement only then.
                let insertedIDs = Set(inserted)
                let dropped = jobs.map(\.id).filter { !insertedIDs.contains($0) }
                var existing = 0
                let query: PostgresQuery = "SELECT count(*) FROM conveyor_jobs WHERE id = ANY(\(dropped)::uuid[])"
                for try await count in try await runner.run(query, logger: logger).decode(Int64.self) { existing = Int(count) }
                byUniqueKey = max(0, Set(dropped).count - existing)
            }
            if let rejectQuery {
                for try await _ in try await runner.run(rejectQuery, logger: logger).decode(UUID.self) { quarantined += 1 }
            }
            return IngestResult(
                inserted: inserted.count, duplicates: jobs.count - inserted.count, uniqueKeyDuplicates: byUniqueKey,
                quarantined: quarantined, started: started)
        }
        if rejectQuery == nil || jobQuery == nil {
            return try await write(client)
        }
        return try await client.withTransaction(logger: logger) { connection in try await write(connection) }
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
