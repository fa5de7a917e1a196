import ConveyorCore
import Testing

@Suite("Job state machine")
struct JobResolutionTests {
    let policy = RetryPolicy.standard
    let random = FixedRandomSource(0.5)

    private func resolve(_ result: AttemptResult, attempt: Int = 1, maxAttempts: Int = 3) -> JobResolution {
        JobResolution.resolve(result, attempt: attempt, maxAttempts: maxAttempts, policy: policy, random: random)
    }

    @Test("a returned outcome maps to completed, snoozed or cancelled")
    func outcomes() {
        #expect(resolve(.outcome(.completed)) == .complete)
        #expect(resolve(.outcome(.snooze(.seconds(30)))) == .snooze(.seconds(30)))
        #expect(resolve(.outcome(.cancel(reason: "user left"))) == .cancel(reason: "user left"))
        #expect(resolve(.interrupted) == .release)
    }

    @Test("an error retries with the policy's backoff while attempts remain")
    func retriesWithBackoff() {
        let failure = FailureRecord(message: "boom", kind: .error)
        // attempt 2 with random 0.5: 2^4 + 15 + floor(5) * 3 = 46 s
        #expect(resolve(.failed(message: "boom", kind: .error), attempt: 2) == .retry(after: .seconds(46), failure))
    }

    @Test("the attempt that reaches max_attempts goes to dead")
    func deadAtMaxAttempts() {
        #expect(resolve(.failed(message: "boom", kind: .error), attempt: 3, maxAttempts: 3)
            == .dead(FailureRecord(message: "boom", kind: .error)))
        #expect(resolve(.failed(message: "slow", kind: .timeout), attempt: 3, maxAttempts: 3).nextState == .dead)
    }

    @Test("permanent failures, undecodable args and unknown kinds are dead at once", arguments: [
        FailureKind.permanent, .badArgs, .unknownKind,
    ])
    func deadAtOnce(kind: FailureKind) {
        #expect(resolve(.failed(message: "no", kind: kind), attempt: 1, maxAttempts: 25) == .dead(FailureRecord(message: "no", kind: kind)))
    }

    @Test("retry-after overrides the backoff but still spends an attempt")
    func retryAfter() {
        let result = AttemptResult(error: JobFailure.retryAfter(.seconds(120), "rate limited"))
        #expect(resolve(result, attempt: 1) == .retry(after: .seconds(120), FailureRecord(message: "rate limited", kind: .retryAfter)))
        #expect(resolve(result, attempt: 3, maxAttempts: 3).nextState == .dead)
    }

    @Test("thrown errors are classified")
    func classification() {
        struct Oops: Error {}
        #expect(AttemptResult(error: JobFailure.permanent("bad input")) == .failed(message: "bad input", kind: .permanent))
        if case .failed(let message, .error, nil) = AttemptResult(error: Oops()) {
            #expect(message.contains("Oops"))
        } else {
            Issue.record("expected a plain error")
        }
    }

    @Test("each resolution names the state the job moves to")
    func nextStates() {
        let failure = FailureRecord(message: "x", kind: .error)
        #expect(JobResolution.complete.nextState == .completed)
        #expect(JobResolution.retry(after: .seconds(1), failure).nextState == .available)
        #expect(JobResolution.snooze(.seconds(1)).nextState == .available)
        #expect(JobResolution.release.nextState == .available)
        #expect(JobResolution.dead(failure).nextState == .dead)
        #expect(JobResolution.cancel(reason: "x").nextState == .cancelled)
    }
}
