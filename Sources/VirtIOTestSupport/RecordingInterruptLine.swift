import Synchronization
import VirtIO

/// An interrupt line that counts how often it was signalled.
public final class RecordingInterruptLine: InterruptLine {
    private let counter = Atomic<Int>(0)
    public init() {}
    public func signal() { counter.add(1, ordering: .sequentiallyConsistent) }
    public var count: Int { counter.load(ordering: .sequentiallyConsistent) }
}

/// An interrupt trigger that counts what a device signalled, for device tests without a transport.
public final class RecordingInterruptTrigger: InterruptTrigger {
    private let used = Atomic<Int>(0)
    private let config = Atomic<Int>(0)
    private let resets = Atomic<Int>(0)
    public init() {}
    public func trigger(_ reason: InterruptReason) {
        switch reason {
        case .usedBuffer: used.add(1, ordering: .sequentiallyConsistent)
        case .configChange: config.add(1, ordering: .sequentiallyConsistent)
        }
    }
    public func signalNeedsReset() {
        resets.add(1, ordering: .sequentiallyConsistent)
        trigger(.configChange)
    }
    public var usedBufferCount: Int { used.load(ordering: .sequentiallyConsistent) }
    public var configChangeCount: Int { config.load(ordering: .sequentiallyConsistent) }
    public var needsResetCount: Int { resets.load(ordering: .sequentiallyConsistent) }
}
