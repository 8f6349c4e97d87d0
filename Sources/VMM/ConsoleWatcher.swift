/// Watches console output for a marker string (e.g. "Run /init") and reports the first match
/// with the time since `start`. Keeps only a marker-sized tail, so memory stays bounded.
public final class ConsoleWatcher: Sendable {
    private struct State {
        var tail: [UInt8] = []
        var matchedAt: Duration? = nil
        var onMatch: (@Sendable (Duration) -> Void)? = nil
    }

    private let marker: [UInt8]
    private let start: ContinuousClock.Instant
    private let state = Locked(State())

    public init(marker: String, start: ContinuousClock.Instant = .now) {
        self.marker = Array(marker.utf8)
        self.start = start
    }

    /// Called once, on the thread that feeds the matching bytes.
    public func onMatch(_ body: @escaping @Sendable (Duration) -> Void) {
        state.mutate { $0.onMatch = body }
    }

    public var matchedAfter: Duration? { state.value.matchedAt }

    public func feed(_ bytes: [UInt8]) {
        guard !marker.isEmpty else { return }
        let fire: ((@Sendable (Duration) -> Void), Duration)? = state.mutate { s in
            guard s.matchedAt == nil else { return nil }
            s.tail += bytes
            guard let range = s.tail.firstRange(of: marker) else {
                if s.tail.count > marker.count { s.tail.removeFirst(s.tail.count - marker.count) }
                return nil
            }
            _ = range
            let elapsed = ContinuousClock.now - start
            s.matchedAt = elapsed
            s.tail = []
            return s.onMatch.map { ($0, elapsed) }
        }
        if let (body, elapsed) = fire { body(elapsed) }
    }
}
