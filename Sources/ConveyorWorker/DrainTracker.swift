/// Whether a queue looks empty to its producer, judged from claims that came back short.
///
/// A short claim means the queue is drained — unless work was announced (a notification of new jobs, a
/// poll tick) after the claim was sent: the claim's snapshot may predate that commit, and believing it
/// would leave the new job waiting for the next poll (seen in the benchmark: one push in 50 took 1 s).
/// Each claim carries the token of the announcements seen when it was sent; only a short claim whose
/// token is still current marks the queue drained.
struct DrainTracker: Sendable, Equatable {
    /// No claim until work is announced again.
    private(set) var isDrained = false
    /// Announcements seen so far.
    private var announcements = 0

    /// Work may have arrived: claim again.
    mutating func workAnnounced() {
        announcements += 1
        isDrained = false
    }

    /// The token to send with a claim and hand back with its result.
    var claimToken: Int { announcements }

    /// A claim sent with `token` returned `count` jobs for `requested` slots.
    mutating func claimReturned(token: Int, count: Int, requested: Int) {
        if count < requested && token == announcements { isDrained = true }
    }
}
