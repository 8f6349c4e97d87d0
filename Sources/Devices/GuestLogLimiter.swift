// Log lines a guest can trigger at will (a kick on a broken queue, a malformed packet) go through
// one limiter per device, so a guest looping on them cannot flood the host's log.

import Logging

/// Lets the first `burst` lines of each `interval` through and counts the rest; the next line
/// that goes out says how many were suppressed before it. Not thread-safe: a device's host
/// serialises its calls, as it does for everything else on the device.
public struct GuestLogLimiter {
    public static let defaultBurst = 10
    public static let defaultInterval = Duration.seconds(60)

    public let burst: Int
    public let interval: Duration
    private let now: () -> ContinuousClock.Instant
    private var windowStart: ContinuousClock.Instant?
    private var sentInWindow = 0
    private var suppressed = 0

    public init(burst: Int = defaultBurst, interval: Duration = defaultInterval,
                now: @escaping () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.burst = burst
        self.interval = interval
        self.now = now
    }

    /// Logs `message` at `level` unless this interval's budget is spent (then only counts it).
    public mutating func log(_ logger: Logger, _ level: Logger.Level, _ message: @autoclosure () -> String) {
        let time = now()
        if let start = windowStart, start.duration(to: time) < interval {
            guard sentInWindow < burst else {
                suppressed += 1
                return
            }
        } else {
            windowStart = time
            sentInWindow = 0
        }
        sentInWindow += 1
        let note = suppressed > 0 ? " (\(suppressed) similar lines suppressed)" : ""
        suppressed = 0
        logger.log(level: level, "\(message())\(note)")
    }
}
