import ConveyorCore
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("the default schedule is attempt⁴ + 15 + jitter·(attempt + 1)", arguments: [(Int, Double, Double)]([
        (1, 0.0, 16.0), (1, 0.99, 34.0), (5, 0.0, 640.0), (10, 0.35, 10_048.0), (24, 0.0, 331_791.0),
    ]))
    func defaultSchedule(attempt: Int, random: Double, seconds: Double) {
        #expect(RetryPolicy.polynomialBackoff(attempt: attempt, random: random) == .seconds(seconds))
    }

    @Test("25 attempts span about three weeks")
    func horizon() {
        let total = (1..<25).map { RetryPolicy.polynomialBackoff(attempt: $0, random: 0.5).seconds }.reduce(0, +)
        #expect(total > 18 * 86_400 && total < 23 * 86_400)
        #expect(RetryPolicy.standard.maxAttempts == 25)
    }

    @Test("a seeded random source repeats its sequence")
    func seeded() {
        let a = SeededRandomSource(seed: 42), b = SeededRandomSource(seed: 42)
        let first = (0..<5).map { _ in a.nextUnit() }
        #expect(first == (0..<5).map { _ in b.nextUnit() })
        #expect(first.allSatisfy { (0..<1).contains($0) })
        #expect(Set(first).count == 5)
    }

    @Test("exponential backoff doubles up to its cap")
    func exponential() {
        let backoff = RetryPolicy.exponential(base: .seconds(1), cap: .seconds(30), jitter: 0)
        let seconds: [Double] = [1, 2, 3, 5, 6, 40].map { backoff($0, 0.7).seconds }
        let expected: [Double] = [1, 2, 4, 16, 30, 30]
        #expect(seconds == expected)
    }
}

@Suite("Durations in logs")
struct ReadableDurationTests {
    static let cases: [(Duration, String)] = [
        (.zero, "0s"), (.microseconds(850), "850µs"), (.microseconds(12_500), "12.5ms"), (.milliseconds(999), "999ms"),
        (.seconds(1.0037019974876997), "1.004s"), (.seconds(26), "26s"), (.seconds(250), "4m10s"), (.seconds(240), "4m"),
        (.seconds(3 * 3600 + 125), "3h2m"), (.seconds(2 * 86_400 + 4 * 3600 + 59), "2d4h"), (.seconds(-1.5), "-1.5s"),
    ]

    @Test("are short and exact enough", arguments: cases)
    func readable(duration: Duration, text: String) {
        #expect(duration.readable == text)
    }
}
