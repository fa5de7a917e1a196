import ConveyorCore
import ConveyorHTTPClient
import ConveyorMeta
import Foundation
import Testing

@Suite("Circuit breaker and Graph error classification")
struct BreakerAndGraphErrorTests {
    @Test("opens at the failure rate once the minimum volume is reached, half-opens after the cool-down with one trial")
    func breaker() {
        let clock = ManualClock()
        let changes = Changes()
        let breaker = CircuitBreaker(
            name: "meta", configuration: .init(failureRate: 0.5, minimumCalls: 10, window: .seconds(10), coolDown: .seconds(30)), clock: clock,
            onChange: { changes.append($0) })
        // Nine failures: below the volume, still closed.
        for _ in 0..<9 {
            #expect(breaker.acquire() == .allowed(trial: false))
            breaker.record(success: false)
        }
        #expect(breaker.state == .closed)
        // Failures older than the window fall out: the tenth call does not open it.
        clock.advance(by: 11)
        breaker.record(success: false)
        #expect(breaker.state == .closed)
        for _ in 0..<5 { breaker.record(success: true) }
        for _ in 0..<3 { breaker.record(success: false) }
        #expect(breaker.state == .closed)  // 9 calls in the window: below the volume
        breaker.record(success: false)  // 5 of 10 failed
        #expect(breaker.state == .open)
        #expect(breaker.acquire() == .rejected(until: clock.now().addingTimeInterval(30)))
        clock.advance(by: 30)
        #expect(breaker.acquire() == .allowed(trial: true))
        // Only one trial at a time.
        guard case .rejected = breaker.acquire() else { Issue.record("a second trial was let through"); return }
        breaker.record(success: false, trial: true)
        #expect(breaker.state == .open)
        clock.advance(by: 30)
        #expect(breaker.acquire() == .allowed(trial: true))
        breaker.record(success: true, trial: true)
        #expect(breaker.state == .closed)
        #expect(changes.all == [.open, .halfOpen, .open, .halfOpen, .closed])
    }

    @Test("Graph errors: throttling, transient and permanent codes; usage headers; HTML is a recorded failure")
    func classification() {
        func error(_ code: Int, transient: Bool = false) -> GraphError {
            GraphError(body: Array(#"{"error":{"message":"m","type":"OAuthException","code":\#(code),"is_transient":\#(transient),"fbtrace_id":"T"}}"#.utf8))!
        }
        for code in [4, 17, 32, 341, 613, 80000, 80004, 80014] { #expect(error(code).classification == .throttled, "code \(code)") }
        for code in [1, 2, 368] { #expect(error(code).classification == .transient, "code \(code)") }
        #expect(error(100, transient: true).classification == .transient)
        for code in [190, 10, 200, 299, 100, 3, 506] { #expect(error(code).classification == .permanent, "code \(code)") }
        let headers = [(name: "x-business-use-case-usage", value: #"{"123":[{"type":"ads_management","call_count":100,"estimated_time_to_regain_access":7},{"type":"x","estimated_time_to_regain_access":2}]}"#)]
        #expect(GraphUsage.regainAccess(headers: headers) == .seconds(420))
        #expect(GraphUsage.regainAccess(headers: [(name: "X-Business-Use-Case-Usage", value: "not json")]) == nil)
        let html = UpstreamResponse(status: 502, headers: [], body: Array("<html>\u{0}bad gateway</html>".utf8))
        let failure = GraphFailure.classify(html, what: "POST /x")
        #expect(failure.classification == .transient)
        #expect(failure.message.contains("without a Graph error object"))
        #expect(!failure.message.contains("\u{0}"))
    }

    @Test("access tokens and proofs are redacted from any text")
    func redaction() {
        let text = "GET https://graph.facebook.com/v23.0/1/events?access_token=EAAB123&appsecret_proof=abc&x=1 failed"
        let redacted = GraphRedaction.redact(text)
        #expect(!redacted.contains("EAAB123"))
        #expect(!redacted.contains("=abc"))
        #expect(redacted.contains("access_token=[redacted]&appsecret_proof=[redacted]&x=1"))
    }
}

final class Changes: Sendable {
    private let states = Mutex<[CircuitBreaker.State]>([])
    func append(_ state: CircuitBreaker.State) { states.withLock { $0.append(state) } }
    var all: [CircuitBreaker.State] { states.withLock { $0 } }
}
import Synchronization
