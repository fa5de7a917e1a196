public import Foundation

/// A worker in the same process that starts freshly ingested jobs itself — a *direct start*: the
/// ingester inserts them already claimed, which spares each the claim statement (a third of the SQL a
/// job costs) and the notify → claim round trip.
///
/// The ingester asks ``plan(ingester:limit:)`` before it moves a batch (the worker may hold it back
/// briefly while its own queues have jobs waiting in PostgreSQL, so the batch can start at once instead
/// of queueing behind them), reserves slots with ``reserve(_:now:ingester:)`` for the jobs it decoded, inserts
/// with that reservation, and hands the result to ``started(_:reservation:sent:)`` — always, also with
/// no jobs when the insert failed, so the reserved slots are freed.
public protocol JobStarter: Sendable {
    /// The worker the started jobs are leased to (`locked_by`).
    var workerID: String { get }
    /// How long a started job's lease lasts unless renewed.
    var lease: Duration { get }
    /// How many envelopes the next batch of `ingester` should take (at most `limit`); may wait a little
    /// first. The room it sizes the batch for is set aside from other ingesters' plans until
    /// ``reserve(_:now:ingester:)`` or ``cancelPlan(ingester:)``.
    func plan(ingester: String, limit: Int) async -> Int
    /// Drops `ingester`'s plan (its move found the ingress empty).
    func cancelPlan(ingester: String)
    /// Reserves free slots for the jobs among `jobs` this worker can start now (served queue, due at
    /// `now`), in priority order within each queue; drops `ingester`'s plan.
    func reserve(_ jobs: [NewJob], now: Date, ingester: String) -> StartReservation
    /// Starts the jobs the insert inserted `running` for this reservation, and frees the slots it did not use.
    func started(_ jobs: [ClaimedJob], reservation: StartReservation, sent: ContinuousClock.Instant)
}

/// Slots a ``JobStarter`` set aside for one ingest batch.
public struct StartReservation: Sendable, Equatable {
    /// Positions in the batch's jobs, ascending.
    public var rows: [Int]
    /// Slots reserved per queue.
    public var slots: [String: Int]

    /// Creates a reservation.
    public init(rows: [Int] = [], slots: [String: Int] = [:]) {
        self.rows = rows
        self.slots = slots
    }

    /// Nothing reserved.
    public var isEmpty: Bool { rows.isEmpty }
}
