import Foundation
import Synchronization

/// Runs the built `conveyor` binary as a child process, as operators and Procfile runners do.
struct ConveyorProcess {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `conveyor` executable next to the test bundle (both live in the build's products folder).
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("conveyor")
    }

    /// `conveyor-test-worker`: the stock commands plus test-only kinds (`test.abort`).
    static var testWorker: URL { executable.deletingLastPathComponent().appendingPathComponent("conveyor-test-worker") }

    /// The environment for a run: only what the test passes, plus PATH/HOME, so a developer's own
    /// DATABASE_URL or CONVEYOR_* settings never leak in.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = extra
        let inherited = ProcessInfo.processInfo.environment
        for key in ["PATH", "HOME", "LANG"] { environment[key] = environment[key] ?? inherited[key] }
        environment["CONVEYOR_LOG_LEVEL"] = environment["CONVEYOR_LOG_LEVEL"] ?? "warning"
        return environment
    }

    /// Runs `conveyor arguments…` to completion.
    static func run(_ arguments: [String], environment extra: [String: String] = [:], input: String? = nil) async throws -> Result {
        try await run(executable: executable, arguments, environment: environment(extra), input: input)
    }

    /// Runs another `conveyor` executable (a copy elsewhere) in `folder`.
    static func run(executable: URL, _ arguments: [String], environment extra: [String: String] = [:], in folder: URL) async throws -> Result {
        try await run(executable: executable, arguments, environment: environment(extra), input: nil, directory: folder)
    }

    /// Runs any program (`python3`, `redis-cli`…) through `/usr/bin/env` with exactly `environment`,
    /// awaiting its exit without blocking a thread.
    static func tool(_ arguments: [String], environment: [String: String]) async throws -> Result {
        try await run(executable: URL(fileURLWithPath: "/usr/bin/env"), arguments, environment: environment, input: nil)
    }

    private static func run(
        executable: URL, _ arguments: [String], environment: [String: String], input: String?, directory: URL? = nil
    ) async throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory ?? URL(fileURLWithPath: NSTemporaryDirectory())
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let collected = OutputCollector(out: out, err: err)
        let stdin = Pipe()
        process.standardInput = stdin
        let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
                if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
                try? stdin.fileHandleForWriting.close()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        let (stdout, stderr) = await collected.finish()
        return Result(status: status, stdout: stdout, stderr: stderr)
    }
}

/// Drains a child's stdout and stderr as they are written, so a chatty child never blocks on a full pipe.
struct OutputCollector {
    private let out: PipeReader
    private let err: PipeReader

    init(out: Pipe, err: Pipe) {
        self.out = PipeReader(out)
        self.err = PipeReader(err)
        self.out.start()
        self.err.start()
    }

    /// After the child exited: waits until both pipes are closed by every writer (at most 3 s: another
    /// child may hold them open), and returns what was written to each.
    func finish() async -> (String, String) {
        let (stdout, stderr) = (await out.finished(within: .seconds(3)), await err.finished(within: .seconds(3)))
        return (String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
