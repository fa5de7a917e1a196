import ConveyorIngress
import Synchronization

/// Collects committed ingest batches so tests await totals instead of sleeping.
final class IngestProbe: Sendable {
    private struct State {
        var envelopes = 0
        var duplicates = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// The observer to pass to the ingester.
    var observer: @Sendable (EnvelopeIngester.Batch) -> Void {
        { [self] batch in self.record(batch.envelopes, duplicates: batch.result.duplicates) }
    }

    var envelopes: Int { state.withLock { $0.envelopes } }

    /// Valid envelopes dropped as duplicates so far.
    var duplicates: Int { state.withLock { $0.duplicates } }

    private func record(_ count: Int, duplicates: Int) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.envelopes += count
            state.duplicates += duplicates
            let total = state.envelopes
            let ready = state.waiters.filter { $0.0 <= total }.map(\.1)
            state.waiters.removeAll { $0.0 <= total }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once at least `count` envelopes were committed in total.
    func waitFor(envelopes count: Int) async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.envelopes >= count { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }
}

