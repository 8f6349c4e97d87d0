import Synchronization

/// Records the guest's time to init: the guest's init writes the byte 123 to this device
/// (Firecracker's boot-timer convention) and the device keeps the time since `start`.
public final class BootTimer: BusDevice {
    public static let magic: UInt8 = 123
    private let start: ContinuousClock.Instant
    private let recorded = Mutex<Duration?>(nil)
    private let onRecord: @Sendable (Duration) -> Void

    public init(start: ContinuousClock.Instant = .now, onRecord: @escaping @Sendable (Duration) -> Void = { _ in }) {
        self.start = start
        self.onRecord = onRecord
    }

    /// Time from `start` to the first magic write, if it has happened.
    public var timeToInit: Duration? { recorded.withLock { $0 } }

    public func read(offset: UInt64, size: Int) -> [UInt8] { [UInt8](repeating: 0, count: max(1, size)) }

    public func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        guard offset == 0, data.first == Self.magic else { return .done }
        let elapsed = ContinuousClock.now - start
        let first = recorded.withLock { value -> Bool in
            guard value == nil else { return false }
            value = elapsed
            return true
        }
        if first { onRecord(elapsed) }
        return .done
    }
}
