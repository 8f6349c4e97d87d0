// How long each step of a sequence took, for debug logs: a container's creation (Container.create)
// and the agent's own start (KataAgent).

import SystemSupport

/// Durations between successive `mark`s, the first one counted from `init`.
public struct StepTimes: Sendable, CustomStringConvertible {
    private let clock = ContinuousClock()
    private var last: ContinuousClock.Instant
    public private(set) var steps: [(name: String, duration: Duration)] = []

    public init() { last = clock.now }

    /// Ends the step `name` now; the next one starts here.
    public mutating func mark(_ name: String) {
        let now = clock.now
        steps.append((name, last.duration(to: now)))
        last = now
    }

    /// "spec checked 1 ms, cgroup 3 ms, ..."
    public var description: String {
        steps.map { "\($0.name) \(Int($0.duration.milliseconds.rounded())) ms" }.joined(separator: ", ")
    }
}
