import Synchronization
import SystemSupport

/// The thread that runs every virtio device's work: one epoll over each slot's QueueNotify
/// eventfds (ioeventfds) and backend wake eventfd, plus a stop eventfd. vCPU threads never run
/// device code; a kick wakes this thread, which runs the queue under the slot's lock.
final class DeviceEventLoop: Sendable {
    /// epoll token: what fired.
    enum Token: RawRepresentable, Sendable, Equatable {
        case stop
        case queue(slot: Int, queue: Int)
        case wake(slot: Int)
        case backend(slot: Int)

        init?(rawValue: UInt64) {
            switch rawValue >> 32 {
            case 0 where rawValue == 1: self = .stop
            case 1: self = .queue(slot: Int(rawValue >> 16 & 0xffff), queue: Int(rawValue & 0xffff))
            case 2: self = .wake(slot: Int(rawValue & 0xffff))
            case 3: self = .backend(slot: Int(rawValue & 0xffff))
            default: return nil
            }
        }

        var rawValue: UInt64 {
            switch self {
            case .stop: 1
            case .queue(let slot, let queue): 1 << 32 | UInt64(slot & 0xffff) << 16 | UInt64(queue & 0xffff)
            case .wake(let slot): 2 << 32 | UInt64(slot & 0xffff)
            case .backend(let slot): 3 << 32 | UInt64(slot & 0xffff)
            }
        }
    }

    private let slots: [VirtioMmioSlot]
    private let epoll: Epoll<Token>
    private let stopEvent: EventFD
    private let thread = VcpuThread()
    private let started = Atomic<Bool>(false)

    init(slots: [VirtioMmioSlot]) throws(Errno) {
        self.slots = slots
        epoll = try Epoll()
        stopEvent = try EventFD()
        try epoll.add(stopEvent.fd, events: .readable, token: .stop)
        for (s, slot) in slots.enumerated() {
            for (q, event) in slot.queueEvents.enumerated() {
                try epoll.add(event.fd, events: .readable, token: .queue(slot: s, queue: q))
            }
            try epoll.add(slot.wake.fd, events: .readable, token: .wake(slot: s))
            if let backend = slot.backendDescriptor {
                try epoll.add(backend, events: [.readable, .edgeTriggered], token: .backend(slot: s))
            }
        }
    }

    func start() throws(Errno) {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try thread.start(name: "virtio-devices") { [self] in run() }
    }

    /// Asks the thread to end (from any thread, without waiting).
    func requestStop() {
        try? stopEvent.signal()
    }

    /// Ends the thread and waits for it. Idempotent; never call from the loop itself.
    func stop() {
        requestStop()
        thread.join()
    }

    private func run() {
        while true {
            let events: [(token: Token, events: EpollEvents)]
            do {
                events = try epoll.wait(max: 32, timeoutMs: -1)
            } catch {
                return
            }
            for (token, _) in events {
                switch token {
                case .stop:
                    return
                case .queue(let s, let q):
                    guard s < slots.count, q < slots[s].queueEvents.count else { continue }
                    _ = try? slots[s].queueEvents[q].consume()
                    slots[s].runQueue(q)
                case .wake(let s):
                    guard s < slots.count else { continue }
                    _ = try? slots[s].wake.consume()
                    slots[s].runBackend()
                case .backend(let s):
                    guard s < slots.count else { continue }
                    slots[s].runBackend()
                }
            }
        }
    }
}
