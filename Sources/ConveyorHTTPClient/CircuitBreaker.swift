public import ConveyorCore
public import Foundation
import Synchronization

/// A circuit breaker for one upstream (Hystrix, resilience4j, opossum; api-notes §F.4): it counts calls
/// and failures over a rolling window and, once at least ``Configuration/minimumCalls`` were made and
/// the failure rate reached ``Configuration/failureRate``, opens for ``Configuration/coolDown``; then one
/// trial call is let through (half-open): success closes it, failure opens it again.
///
/// While it is open, callers do not call: jobs wait (a snooze, no attempt spent) instead of piling
/// timeouts onto a sick upstream. Time comes from the injected clock, so tests are exact.
public final class CircuitBreaker: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// The failure share over the window at which it opens. Default 0.5.
        public var failureRate: Double
        /// Calls in the window before it may open at all. Default 20 (Hystrix's volume threshold).
        public var minimumCalls: Int
        /// The rolling window. Default 30 s, counted in 1-second buckets.
        public var window: Duration
        /// How long it stays open before a trial. Default 30 s.
        public var coolDown: Duration

        public init(failureRate: Double = 0.5, minimumCalls: Int = 20, window: Duration = .seconds(30), coolDown: Duration = .seconds(30)) {
            self.failureRate = min(max(failureRate, 0.01), 1)
            self.minimumCalls = max(1, minimumCalls)
            self.window = max(.seconds(1), window)
            self.coolDown = max(.milliseconds(1), coolDown)
        }
    }

    public enum State: String, Sendable, Equatable {
        case closed
        case open
        case halfOpen = "half_open"

        /// As the `conveyor_circuit_state` gauge shows it: 0 closed, 1 half-open, 2 open.
        public var gaugeValue: Double {
            switch self {
            case .closed: 0
            case .halfOpen: 1
            case .open: 2
            }
        }
    }

    /// Whether a call may go out.
    public enum Permit: Sendable, Equatable {
        /// Call, and report the outcome with ``record(success:trial:)``; `trial` when it is the half-open trial.
        case allowed(trial: Bool)
        /// Do not call before `until`.
        case rejected(until: Date)
    }

    private struct Inner {
        var state: State = .closed
        /// Open until then (state `.open`).
        var openUntil = Date.distantPast
        /// Whether the half-open trial is out.
        var trialOut = false
        /// Per-second buckets: (second since 1970, calls, failures).
        var buckets: [(second: Int64, calls: Int, failures: Int)] = []
    }

    public let name: String
    public let configuration: Configuration
    private let clock: any ConveyorClock
    private let inner = Mutex(Inner())
    private let onChange: @Sendable (State) -> Void

    /// Creates a closed breaker; `onChange` hears every transition (a metric, a log line).
    public init(
        name: String, configuration: Configuration = Configuration(), clock: any ConveyorClock = SystemClock(),
        onChange: @escaping @Sendable (State) -> Void = { _ in }
    ) {
        self.name = name
        self.configuration = configuration
        self.clock = clock
        self.onChange = onChange
    }

    /// The current state (an open breaker whose cool-down ended reports `.halfOpen`).
    public var state: State {
        let now = clock.now()
        return inner.withLock { inner in
            inner.state == .open && now >= inner.openUntil ? .halfOpen : inner.state
        }
    }

    /// Asks to make one call.
    public func acquire() -> Permit {
        let now = clock.now()
        let (permit, changed): (Permit, State?) = inner.withLock { inner in
            switch inner.state {
            case .closed:
                return (.allowed(trial: false), nil)
            case .open:
                guard now >= inner.openUntil else { return (.rejected(until: inner.openUntil), nil) }
                inner.state = .halfOpen
                inner.trialOut = true
                return (.allowed(trial: true), .halfOpen)
            case .halfOpen:
                if inner.trialOut { return (.rejected(until: now.addingTimeInterval(1)), nil) }
                inner.trialOut = true
                return (.allowed(trial: true), nil)
            }
        }
        if let changed { onChange(changed) }
        return permit
    }

    /// Reports how a permitted call went. A failure is the upstream's fault (a timeout, a refused
    /// connection, a 5xx), not a rejected request.
    public func record(success: Bool, trial: Bool = false) {
        let now = clock.now()
        let second = Int64(now.timeIntervalSince1970.rounded(.down))
        let windowSeconds = Int64(configuration.window.components.seconds)
        let changed: State? = inner.withLock { inner in
            if trial || inner.state == .halfOpen {
                inner.trialOut = false
                inner.buckets.removeAll()
                if success {
                    inner.state = .closed
                    return .closed
                }
                inner.state = .open
                inner.openUntil = now.addingTimeInterval(configuration.coolDown.seconds)
                return .open
            }
            guard inner.state == .closed else { return nil }
            inner.buckets.removeAll { $0.second <= second - windowSeconds }
            if let last = inner.buckets.indices.last, inner.buckets[last].second == second {
                inner.buckets[last].calls += 1
                if !success { inner.buckets[last].failures += 1 }
            } else {
                inner.buckets.append((second, 1, success ? 0 : 1))
            }
            let calls = inner.buckets.reduce(0) { $0 + $1.calls }
            let failures = inner.buckets.reduce(0) { $0 + $1.failures }
            guard calls >= configuration.minimumCalls, Double(failures) >= configuration.failureRate * Double(calls) else { return nil }
            inner.state = .open
            inner.openUntil = now.addingTimeInterval(configuration.coolDown.seconds)
            inner.buckets.removeAll()
            return .open
        }
        if let changed { onChange(changed) }
    }
}
