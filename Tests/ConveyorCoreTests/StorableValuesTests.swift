import ConveyorCore
import Foundation
import Testing

@Suite("Values made storable")
struct StorableValuesTests {
    @Test("RFC 3339 times are read only within years 1–9999; the edges are accepted")
    func dateRange() {
        for text in ["999999-01-01T00:00:00Z", "+275760-09-13T00:00:00Z", "10000-01-01T00:00:00Z", "0000-12-31T23:59:59Z", String(repeating: "9", count: 100)] {
            #expect(RFC3339.parse(text) == nil, "\(text)")
        }
        #expect(RFC3339.parse("9999-12-31T23:59:59Z") != nil)
        #expect(RFC3339.parse("0001-01-01T00:00:00Z") != nil)
        #expect(RFC3339.parse("2026-12-01T12:00:00.250+01:00") != nil)
    }

    @Test("the storage check reads nesting and NUL escapes from the JSON text, escapes and strings included")
    func storageCheck() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(JSONStorageCheck.problem(in: deep, maxDepth: 64) == .argsTooDeep)
        #expect(JSONStorageCheck.problem(in: String(repeating: "[", count: 64) + String(repeating: "]", count: 64), maxDepth: 64) == nil)
        // Brackets inside strings are text, and an escaped backslash before "u0000" is not a NUL escape.
        #expect(JSONStorageCheck.problem(in: #"{"s":"[[[[[[[[\"]]]"}"#, maxDepth: 2) == nil)
        #expect(JSONStorageCheck.problem(in: #"{"s":"\\u0000"}"#, maxDepth: 64) == nil)
        #expect(JSONStorageCheck.problem(in: #"{"s":"x\u0000"}"#, maxDepth: 64) == .nulCharacter(field: "args"))
        #expect(JSONStorageCheck.problem(in: #"{"\u0000":1}"#, maxDepth: 64) == .nulCharacter(field: "args"))
    }

    @Test("failure messages lose NUL and are cut to 8 KiB on a character boundary, saying how long they were")
    func messages() {
        #expect(FailureRecord(message: "a\u{0}b", kind: .error).message == "a\u{FFFD}b")
        let long = String(repeating: "é", count: 10_000)  // 20,000 bytes
        let cut = FailureRecord(message: long, kind: .error).message
        #expect(cut.utf8.count <= FailureRecord.maxMessageBytes)
        #expect(cut.hasSuffix(" … [cut: 20000 bytes in all]"))
        #expect(cut.dropLast(" … [cut: 20000 bytes in all]".count).allSatisfy { $0 == "é" })
        #expect(FailureRecord(message: "short", kind: .error).message == "short")
    }

    @Test("delays past ten years are clamped, negative ones are zero, reasons are storable")
    func resolutions() {
        let failure = FailureRecord(message: "m", kind: .retryAfter)
        #expect(JobResolution.retry(after: .seconds(1e15), failure).storable == .retry(after: JobResolution.maxDelay, failure))
        #expect(JobResolution.snooze(.seconds(-5)).storable == .snooze(.zero))
        #expect(JobResolution.cancel(reason: "x\u{0}").storable == .cancel(reason: "x\u{FFFD}"))
        let resolved = JobResolution.resolve(
            .failed(message: "later", kind: .retryAfter, retryAfter: .seconds(1e15)), attempt: 1, maxAttempts: 5, policy: .standard,
            random: FixedRandomSource(0))
        #expect(resolved == .retry(after: JobResolution.maxDelay, FailureRecord(message: "later", kind: .retryAfter)))
    }
}
