// What a device moved between the guest and the host: requests (packets, FUSE requests) and their
// bytes, each way. The device counts on its own thread; the metrics endpoint reads at any time.
// Relaxed atomics: every counter only grows, and a reader wants a recent value, not a consistent
// cut across counters.

import Synchronization

/// Counters of one device's traffic, shared by the device (writer) and whoever reports them.
public final class DeviceTraffic: Sendable {
    private let fromGuestOperations = Atomic<UInt64>(0)
    private let fromGuestBytes = Atomic<UInt64>(0)
    private let toGuestOperations = Atomic<UInt64>(0)
    private let toGuestBytes = Atomic<UInt64>(0)

    public init() {}

    /// The guest handed the device one request or packet of `bytes` (payload only, where the
    /// protocol has a header of its own).
    public func countFromGuest(bytes: Int) {
        fromGuestOperations.add(1, ordering: .relaxed)
        fromGuestBytes.add(UInt64(max(0, bytes)), ordering: .relaxed)
    }

    /// The device handed the guest one reply or packet of `bytes`.
    public func countToGuest(bytes: Int) {
        toGuestOperations.add(1, ordering: .relaxed)
        toGuestBytes.add(UInt64(max(0, bytes)), ordering: .relaxed)
    }

    /// The counters now.
    public var snapshot: Snapshot {
        Snapshot(
            fromGuestOperations: fromGuestOperations.load(ordering: .relaxed), fromGuestBytes: fromGuestBytes.load(ordering: .relaxed),
            toGuestOperations: toGuestOperations.load(ordering: .relaxed), toGuestBytes: toGuestBytes.load(ordering: .relaxed))
    }

    /// The counters at one moment.
    public struct Snapshot: Sendable, Equatable {
        public var fromGuestOperations: UInt64
        public var fromGuestBytes: UInt64
        public var toGuestOperations: UInt64
        public var toGuestBytes: UInt64

        public init(fromGuestOperations: UInt64 = 0, fromGuestBytes: UInt64 = 0, toGuestOperations: UInt64 = 0, toGuestBytes: UInt64 = 0) {
            self.fromGuestOperations = fromGuestOperations
            self.fromGuestBytes = fromGuestBytes
            self.toGuestOperations = toGuestOperations
            self.toGuestBytes = toGuestBytes
        }
    }
}
