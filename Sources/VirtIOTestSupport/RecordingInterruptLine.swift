import Synchronization
import VirtIO

/// An interrupt line that counts how often it was signalled.
public final class RecordingInterruptLine: InterruptLine {
    private let counter = Atomic<Int>(0)
    public init() {}
    public func signal() { counter.add(1, ordering: .sequentiallyConsistent) }
    public var count: Int { counter.load(ordering: .sequentiallyConsistent) }
}
