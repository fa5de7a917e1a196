import Synchronization

/// A source of uniform random numbers, injected wherever Conveyor randomises (backoff jitter)
/// so that tests are exact.
public protocol RandomSource: Sendable {
    /// A uniformly distributed value in `0..<1`.
    func nextUnit() -> Double
}

/// The system's random number generator.
public struct SystemRandomSource: RandomSource {
    /// Creates the system source.
    public init() {}

    public func nextUnit() -> Double { Double.random(in: 0..<1) }
}

/// A deterministic generator (SplitMix64) for tests and reproducible runs.
public final class SeededRandomSource: RandomSource {
    private let state: Mutex<UInt64>

    /// Creates a generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) {
        state = Mutex(seed)
    }

    public func nextUnit() -> Double {
        let value = state.withLock { state -> UInt64 in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return Double(value >> 11) / Double(1 << 53)
    }
}

/// A source that always returns the same value, to pin jitter in tests.
public struct FixedRandomSource: RandomSource {
    /// The value returned, in `0..<1`.
    public var value: Double

    /// Creates a source that always returns `value`.
    public init(_ value: Double) { self.value = value }

    public func nextUnit() -> Double { value }
}
