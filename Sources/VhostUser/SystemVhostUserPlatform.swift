import Glibc
import GuestMemory
import VirtIO

/// The real host side of a vhost-user session: mmap of the frontend's memfds, eventfd interrupt
/// lines, close(2). Used on the server thread only.
public final class SystemVhostUserPlatform: VhostUserPlatform {
    /// The memory of the last SET_MEM_TABLE (the server re-arms queue notifications in it).
    public private(set) var memory: MappedGuestMemory?

    public init() {}

    public func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory {
        let mapped = try MappedGuestMemory(regions, fds: fds)
        memory = mapped
        return mapped
    }

    public func interruptLine(fd: Int32) -> any InterruptLine { EventFDLine(fd: fd) }

    public func close(fd: Int32) { _ = Glibc.close(fd) }
}

/// An interrupt line that writes 1 to a frontend's call (or err) eventfd. The fd belongs to the
/// vhost-user session, which closes it when replaced; the session and this line live on the
/// server thread, so the fd is never used after it is closed.
struct EventFDLine: InterruptLine {
    let fd: Int32

    func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }
}
