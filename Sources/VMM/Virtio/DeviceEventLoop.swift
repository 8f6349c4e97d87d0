import Synchronization
import SystemSupport

/// The thread that runs every virtio device's work: one `EventManager` over each slot's
/// QueueNotify eventfds (ioeventfds) and backend wake eventfd. vCPU threads never run device
/// code; a kick wakes this thread, which runs the queue under the slot's lock. The manager (its
/// epoll and stop eventfd) is built here, before the thread loads its seccomp filter.
final class DeviceEventLoop: Sendable {
    /// What fired.
    enum Token: RawRepresentable, Sendable, Equatable {
        case queue(slot: Int, queue: Int)
        case wake(slot: Int)
        case backend(slot: Int)

        init?(rawValue: UInt64) {
            switch rawValue >> 32 {
            case 1: self = .queue(slot: Int(rawValue >> 16 & 0xffff), queue: Int(rawValue & 0xffff))
            case 2: self = .wake(slot: Int(rawValue & 0xffff))
            case 3: self = .backend(slot: Int(rawValue & 0xffff))
            default: return nil
            }
        }

        var rawValue: UInt64 {
            switch self {
            case .queue(let slot, let queue): 1 << 32 | UInt64(slot & 0xffff) << 16 | UInt64(queue & 0xffff)
            case .wake(let slot): 2 << 32 | UInt64(slot & 0xffff)
            case .backend(let slot): 3 << 32 | UInt64(slot & 0xffff)
            }
        }
    }

    private let slots: [VirtioMmioSlot]
    private let events: EventManager<Token>
    private let thread = VMMThread()
    private let started = Atomic<Bool>(false)

    init(slots: [VirtioMmioSlot]) throws(Errno) {
        self.slots = slots
        events = try EventManager()
        for (s, slot) in slots.enumerated() {
            for (q, event) in slot.queueEvents.enumerated() {
                try events.add(event.fd, token: .queue(slot: s, queue: q))
            }
            try events.add(slot.wake.fd, token: .wake(slot: s))
            if let backend = slot.backendDescriptor {
                try events.add(backend, events: [.readable, .edgeTriggered], token: .backend(slot: s))
            }
        }
    }

    func start() throws(Errno) {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try thread.start(name: "virtio-devices") { [self] in run() }
    }

    /// Asks the thread to end (from any thread, without waiting).
    func requestStop() {
        events.stop()
    }

    /// Ends the thread and waits for it. Idempotent; never call from the loop itself.
    func stop() {
        requestStop()
        thread.join()
    }

    private func run() {
        try? events.run(maxEvents: 32) { token, _ in
            switch token {
            case .queue(let s, let q):
                guard s < slots.count, q < slots[s].queueEvents.count else { return }
                _ = try? slots[s].queueEvents[q].consume()
                slots[s].runQueue(q)
            case .wake(let s):
                guard s < slots.count else { return }
                _ = try? slots[s].wake.consume()
                slots[s].runBackend()
            case .backend(let s):
                guard s < slots.count else { return }
                slots[s].runBackend()
            }
        }
    }
}
