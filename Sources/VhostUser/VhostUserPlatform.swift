import GuestMemory
import Synchronization
import VirtIO

/// What a vhost-user session needs from the host: mapping the frontend's memory fds, turning
/// call/err eventfds into interrupt lines, and closing fds it no longer needs. The socket
/// server provides the real one (mmap of the memfds, eventfd writes); tests provide a fake.
public protocol VhostUserPlatform: AnyObject {
    /// Maps `regions` (one fd each, same order) as guest memory. The session owns the fds:
    /// after this call it closes them, so a mapping that needs them must duplicate them.
    func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory
    /// An interrupt line that signals eventfd `fd` (a call or err fd). The fd stays open until
    /// `close(fd:)`.
    func interruptLine(fd: Int32) -> any InterruptLine
    /// Closes an fd received from the frontend.
    func close(fd: Int32)
}

/// The interrupt of a device served over vhost-user: a used-buffer interrupt signals every
/// queue's call eventfd (the driver ignores queues with nothing new); needs-reset signals the
/// err eventfds. Configuration-change interrupts need the backend request channel, which we
/// do not negotiate, so they are only counted.
final class VhostUserInterrupt: InterruptTrigger {
    struct Lines {
        var call: [Int: any InterruptLine] = [:]
        var error: [Int: any InterruptLine] = [:]
        var unsentConfigChanges = 0
    }

    let lines = Mutex(Lines())

    func trigger(_ reason: InterruptReason) {
        let targets = lines.withLock { lines -> [any InterruptLine] in
            switch reason {
            case .usedBuffer:
                return Array(lines.call.values)
            case .configChange:
                lines.unsentConfigChanges += 1
                return []
            }
        }
        targets.forEach { $0.signal() }
    }

    func signalNeedsReset() {
        lines.withLock { Array($0.error.values) }.forEach { $0.signal() }
    }
}
