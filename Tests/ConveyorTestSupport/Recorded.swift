import ConveyorWorker
import Logging
import Synchronization

/// Things a component reported, in order, and a way for a test to await a condition on them: woken by
/// each report, never by polling.
public final class Recorded<Element: Sendable>: Sendable {
    private struct Waiter {
        var id: Int
        var condition: @Sendable ([Element]) -> Bool
        var continuation: CheckedContinuation<[Element], any Error>
    }

    private struct State {
        var elements: [Element] = []
        var waiters: [Waiter] = []
        var cancelled: Set<Int> = []
        var nextID = 0
    }

    private enum Start {
        case now([Element]), cancelled, waiting
    }

    private let state = Mutex(State())

    public init() {}

    /// Everything reported so far, in order.
    public var all: [Element] { state.withLock { $0.elements } }

    /// Adds reports and wakes the waiters whose condition now holds.
    public func append(_ batch: [Element]) {
        let ready = state.withLock { state -> [(CheckedContinuation<[Element], any Error>, [Element])] in
            state.elements += batch
            let elements = state.elements
            var ready: [(CheckedContinuation<[Element], any Error>, [Element])] = []
            state.waiters.removeAll { waiter in
                guard waiter.condition(elements) else { return false }
                ready.append((waiter.continuation, elements))
                return true
            }
            return ready
        }
        for (continuation, elements) in ready { continuation.resume(returning: elements) }
    }

    /// Returns the reports once `condition` holds for them; throws ``TimedOut`` after `timeout`.
    @discardableResult
    public func wait(
        for what: String, timeout: Duration = .seconds(60), until condition: @escaping @Sendable ([Element]) -> Bool
    ) async throws -> [Element] {
        try await withThrowingTaskGroup(of: [Element].self) { group in
            group.addTask { try await self.wait(until: condition) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TimedOut(what: what, after: timeout)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func wait(until condition: @escaping @Sendable ([Element]) -> Bool) async throws -> [Element] {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let start = state.withLock { state -> Start in
                    if state.cancelled.remove(id) != nil { return .cancelled }
                    if condition(state.elements) { return .now(state.elements) }
                    state.waiters.append(Waiter(id: id, condition: condition, continuation: continuation))
                    return .waiting
                }
                switch start {
                case .now(let elements): continuation.resume(returning: elements)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)  // cancelled before it started waiting
                    return nil
                }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}

/// The results workers wrote: pass ``callback`` as ``Worker/Configuration/onResultsWritten``.
public typealias WrittenResults = Recorded<WrittenResult>

extension Recorded where Element == WrittenResult {
    /// Records each flush's results.
    public var callback: @Sendable ([WrittenResult]) -> Void { { [self] in self.append($0) } }
}

/// Log messages: ``logger`` logs to the test log as usual and records every message at `info` and above.
public typealias LogMessages = Recorded<String>

extension Recorded where Element == String {
    /// A logger that writes to ``TestDatabase/logger``'s output and records each message here.
    public var logger: Logger { logger(withMetadata: false) }

    /// Like ``logger``, but each recorded line is the message followed by its metadata (`key=value`), so a
    /// test can check everything that reaches the logs (e.g. that no secret or row content does).
    public func logger(withMetadata: Bool) -> Logger {
        let output = TestDatabase.logger.handler
        return Logger(label: "conveyor.test") { [self] _ in
            MultiplexLogHandler([output, MessageRecorder(messages: self, withMetadata: withMetadata)])
        }
    }
}

private struct MessageRecorder: LogHandler {
    let messages: Recorded<String>
    let withMetadata: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The message followed by its metadata (`key=value`), so tests can check what reaches the logs.
    func log(event: LogEvent) {
        guard withMetadata else { return messages.append(["\(event.message)"]) }
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        messages.append([rendered.isEmpty ? "\(event.message)" : "\(event.message) \(rendered)"])
    }
}
