import ConveyorCore
import ConveyorTestSupport
import Foundation
import Testing

@Suite("Cron against a reference implementation")
struct CronReferenceTests {
    /// A random expression: values, ranges, steps, lists; day fields either exactly `*` or restricted
    /// without a leading `*` (croniter OR-s a `*/n` day field with the other one, Vixie cron AND-s them;
    /// CronExpressionTests covers that form).
    static func randomExpression(_ random: inout SystemRandomNumberGenerator, seeded: inout SplitMix) -> String {
        // a < b: croniter 7 mishandles one-value ranges such as `6-6` (Vixie reads them as `6`; the
        // table tests cover that form).
        func range(_ low: Int, _ high: Int) -> (Int, Int) {
            let a = Int(seeded.next() % UInt64(high - low)) + low
            return (a, Int(seeded.next() % UInt64(high - a)) + a + 1)
        }
        func field(_ low: Int, _ high: Int, starStep: Bool) -> String {
            switch seeded.next() % 6 {
            case 0: return "*"
            case 1: return starStep ? "*/\(Int(seeded.next() % UInt64(max(1, (high - low) / 2))) + 1)" : "\(Int(seeded.next() % UInt64(high - low + 1)) + low)"
            case 2:
                let (a, b) = range(low, high)
                return "\(a)-\(b)"
            case 3:
                let (a, b) = range(low, high)
                return "\(a)-\(b)/\(Int(seeded.next() % 5) + 1)"
            case 4:
                let values = Set((0..<(Int(seeded.next() % 3) + 2)).map { _ in Int(seeded.next() % UInt64(high - low + 1)) + low })
                return values.sorted().map(String.init).joined(separator: ",")
            default: return "\(Int(seeded.next() % UInt64(high - low + 1)) + low)"
            }
        }
        return [field(0, 59, starStep: true), field(0, 23, starStep: true), field(1, 28, starStep: false),
                field(1, 12, starStep: true), field(0, 6, starStep: false)].joined(separator: " ")
    }

    @Test("next fire times agree with croniter on 500 random expressions in UTC")
    func agreesWithCroniter() async throws {
        var system = SystemRandomNumberGenerator()
        var seeded = SplitMix(state: 20_261_124)
        let start = 1_795_000_000  // 2026-11-18
        var lines: [String] = []
        var expressions: [String] = []
        for index in 0..<500 {
            let expression = Self.randomExpression(&system, seeded: &seeded)
            expressions.append(expression)
            lines.append("\(expression)\t\(start + index * 7919)\t5")
        }
        let script = TestDatabase.repositoryRoot.appendingPathComponent("ops/lib/cron_reference.py").path
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("cron-\(UUID().uuidString).tsv")
        try lines.joined(separator: "\n").appending("\n").write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try await ConveyorProcess.tool(
            ["sh", "-c", "python3 \"$0\" < \"$1\"", script, input.path], environment: ProcessInfo.processInfo.environment)
        #expect(result.status == 0, "croniter missing? ops/test installs it: \(result.stderr)")
        let reference = result.stdout.split(separator: "\n").map { $0.split(separator: " ").compactMap { Int($0) } }
        try #require(reference.count == expressions.count)
        var disagreements = 0
        for (index, expression) in expressions.enumerated() {
            let ours = try CronExpression(expression)
                .next(5, after: Date(timeIntervalSince1970: TimeInterval(start + index * 7919)))
                .map { Int($0.timeIntervalSince1970) }
            if ours != reference[index] {
                disagreements += 1
                if disagreements <= 5 { Issue.record("\(expression): ours \(ours), croniter \(reference[index])") }
            }
        }
        #expect(disagreements == 0)
    }
}

/// SplitMix64, for repeatable random expressions.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
