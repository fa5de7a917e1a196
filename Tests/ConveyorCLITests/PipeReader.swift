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
        var waiters: [CheckedContinuation<Void, Never>] = []
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
                return state.waiters
            }
            onEnd?()
            for waiter in waiters { waiter.resume() }
        }
        thread.name = "pipe-reader"
        thread.start()
    }

    /// Everything read so far.
    var data: Data { state.withLock { $0.data } }

    /// Waits for end of file (every writer closed the pipe) and returns everything read.
    func finished() async -> Data {
        await withCheckedContinuation { continuation in
            let ended = state.withLock { state -> Bool in
                if state.ended { return true }
                state.waiters.append(continuation)
                return false
            }
            if ended { continuation.resume() }
        }
        return data
    }
}
