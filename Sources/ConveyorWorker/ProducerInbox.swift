import ConveyorCore
import Synchronization

/// What a ``QueueProducer`` reacts to, delivered through one stream.
///
/// Wake-ups (a job finished, shutdown) are coalesced: at most one is queued at a time, however many
/// jobs finish meanwhile. Poll ticks and claim results are always delivered.
final class ProducerInbox: Sendable {
    enum Event: Sendable {
        /// Something changed (a slot freed, shutdown began).
        case wake
        /// The poll interval passed, or work may have arrived: look for due jobs even if the queue seemed empty.
        case poll
        /// A claim sent at `sent` with a ``DrainTracker`` `token` returned `jobs` for a request of
        /// `requested` slots.
        case claimed(_ jobs: [ClaimedJob], requested: Int, sent: ContinuousClock.Instant, token: Int)
        /// A claim for `requested` slots failed.
        case claimFailed(requested: Int, error: String)
        /// A chunk kind's partial chunk waited its linger: run it as it is.
        case linger(kind: String)
        /// An ingester inserted `jobs` already claimed, with `reserved` slots set aside for them; the
        /// insert was sent at `sent`.
        case started(_ jobs: [ClaimedJob], reserved: Int, sent: ContinuousClock.Instant)
    }

    let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let wakePending = Atomic<Bool>(false)

    init() {
        (events, continuation) = AsyncStream<Event>.makeStream()
    }

    /// Queues a wake-up unless one is already queued.
    func wake() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            continuation.yield(.wake)
        }
    }

    /// Marks the queued wake-up as consumed (call on receiving `.wake`).
    func wakeReceived() {
        wakePending.store(false, ordering: .releasing)
    }

    /// Delivers an event that must not be coalesced.
    func deliver(_ event: Event) {
        continuation.yield(event)
    }
}
