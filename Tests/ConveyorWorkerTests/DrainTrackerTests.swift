import Testing

@testable import ConveyorWorker

@Suite("Drain tracking: when a short claim means the queue is empty")
struct DrainTrackerTests {
    @Test("a short claim marks the queue drained; a full one does not; announced work undoes it")
    func shortClaim() {
        var tracker = DrainTracker()
        #expect(!tracker.isDrained)
        tracker.claimReturned(token: tracker.claimToken, count: 10, requested: 10)
        #expect(!tracker.isDrained)
        tracker.claimReturned(token: tracker.claimToken, count: 3, requested: 10)
        #expect(tracker.isDrained)
        tracker.workAnnounced()
        #expect(!tracker.isDrained)
    }

    @Test("a short claim sent before work was announced does not mark the queue drained (the lost wake-up)")
    func claimAcrossAnnouncement() {
        var tracker = DrainTracker()
        // A claim goes out; while it runs, a job commits and its notification arrives; then the claim,
        // whose snapshot predates the commit, comes back empty.
        let inFlight = tracker.claimToken
        tracker.workAnnounced()
        tracker.claimReturned(token: inFlight, count: 0, requested: 10)
        #expect(!tracker.isDrained, "the new job would wait for the poll interval")
        // The claim sent after the announcement may judge.
        tracker.claimReturned(token: tracker.claimToken, count: 0, requested: 10)
        #expect(tracker.isDrained)
    }

    @Test("of two claims in flight across an announcement, only the later one can mark the queue drained")
    func twoClaims() {
        var tracker = DrainTracker()
        let first = tracker.claimToken
        tracker.workAnnounced()
        let second = tracker.claimToken
        tracker.claimReturned(token: second, count: 2, requested: 5)
        #expect(tracker.isDrained)
        tracker.workAnnounced()
        tracker.claimReturned(token: first, count: 0, requested: 5)
        #expect(!tracker.isDrained)
    }
}
