import Foundation
import Synchronization
import Testing

/// A long-running `conveyor` child (e.g. a worker) whose stdout can be awaited for a line.
final class RunningProcess: Sendable {
    private struct State {
        var output = ""
        var waiters: [(String, CheckedContinuation<Void, Never>)] = []
        var exited = false
    }

    private let process: Process
    private let reader: PipeReader
    private let state = Mutex(State())
    private let exit = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(_ arguments: [String], environment: [String: String], executable: URL = ConveyorProcess.executable) throws {
        process = Process()
        let pipe = Pipe()
        reader = PipeReader(pipe)
        process.standardOutput = pipe
        process.standardError = pipe
        let continuation = exit.continuation
        process.terminationHandler = { [self] process in
            continuation.yield(process.terminationStatus)
            self.ended()
        }
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ConveyorProcess.environment(environment)
        try process.run()
        reader.start(onData: { [self] data in self.append(data) })
    }

    /// The child exited: wake every waiter, since a line that never came must fail the test, not hang it.
    private func ended() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.exited = true
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.1)
        }
        for waiter in waiters { waiter.resume() }
    }

    private func append(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.output += text
                let output = state.output
                let (done, waiting) = state.waiters.reduce(into: ([CheckedContinuation<Void, Never>](), [(String, CheckedContinuation<Void, Never>)]())) {
                    if output.contains($1.0) { $0.0.append($1.1) } else { $0.1.append($1) }
                }
                state.waiters = waiting
                return done
            }
        for continuation in ready { continuation.resume() }
    }

    /// Everything the process printed so far.
    var output: String { state.withLock { $0.output } }

    /// Returns once the output contains `text`, or the process exited (then it records an issue).
    func waitFor(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) async {
        await withCheckedContinuation { continuation in
            let found = state.withLock { state -> Bool in
                if state.output.contains(text) || state.exited { return true }
                state.waiters.append((text, continuation))
                return false
            }
            if found { continuation.resume() }
        }
        // Woken by the exit: the reader may not have read the last of the output yet.
        if !output.contains(text) { _ = await reader.finished(within: .seconds(3)) }
        if !output.contains(text) {
            Issue.record("the process exited before printing \(text.debugDescription); it printed:\n\(output)", sourceLocation: sourceLocation)
        }
    }

    /// Sends a signal (SIGTERM, SIGINT, SIGKILL…).
    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to exit and its output to end, and returns its status.
    func exitStatus() async -> Int32 {
        var status: Int32 = -1
        for await exited in exit.stream {
            status = exited
            break
        }
        _ = await reader.finished(within: .seconds(3))
        return status
    }
}
