import Foundation
import Synchronization

/// Drains one pipe on a dedicated thread with blocking `read(2)` until end of file.
///
/// Not `FileHandle.readabilityHandler`: on Linux its libdispatch read source races its own teardown
/// and crashes the whole test process in `_dispatch_event_loop_drain` (swift-corelibs-libdispatch
/// #949, swift-corelibs-foundation #3276; it took down a CI run here). A blocking read on a thread of
/// its own never registers the descriptor with libdispatch, and never blocks the cooperative pool.
final class PipeReader: Sendable {
    private struct State {
        var data = Data()
        var ended = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())
    private let pipe: Pipe

    /// A reader for `pipe`; nothing is read before `start`.
    init(_ pipe: Pipe) {
        self.pipe = pipe
    }

    /// Starts reading on a thread of its own. `onData` sees each chunk as it arrives, and `onEnd` runs
    /// once at end of file, both on that thread.
    func start(onData: (@Sendable (Data) -> Void)? = nil, onEnd: (@Sendable () -> Void)? = nil) {
        let handle = pipe.fileHandleForReading
        let descriptor = handle.fileDescriptor
        let thread = Thread { [self] in
            // `handle` is captured so the descriptor stays open until the loop ends.
            withExtendedLifetime(handle) {
                var buffer = [UInt8](repeating: 0, count: 64 * 1024)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { break }
                    let chunk = Data(buffer[0..<count])
                    state.withLock { $0.data.append(chunk) }
                    onData?(chunk)
                }
            }
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.ended = true
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            onEnd?()
            for waiter in waiters { waiter.resume() }
        }
        thread.name = "pipe-reader"
        thread.start()
    }

    /// Everything read so far.
    var data: Data { state.withLock { $0.data } }

    /// Waits for end of file (every writer closed the pipe), or for cancellation, and returns
    /// everything read.
    func finished() async -> Data {
        let token = state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.ended || Task.isCancelled { return true }
                    state.waiters[token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: token) }?.resume()
        }
        return data
    }

    /// Once the child has exited: waits for end of file at most `limit`, then returns what was read.
    ///
    /// A child spawned at the same moment by another test can inherit this pipe's write end (Foundation
    /// does not create pipes close-on-exec), and then end of file comes only when that one exits. What
    /// an exited child wrote is in the pipe already, so the bound loses nothing it printed.
    func finished(within limit: Duration) async -> Data {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await self.finished() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        return data
    }
}
