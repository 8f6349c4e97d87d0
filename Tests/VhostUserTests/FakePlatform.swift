import GuestMemory
import VhostUser
import VirtIO
import VirtIOTestSupport

/// A platform that maps memory tables onto heap memory and records every fd's fate.
final class FakePlatform: VhostUserPlatform {
    private(set) var mapped: [[VhostUserMemoryRegion]] = []
    private(set) var memories: [HeapGuestMemory] = []
    private(set) var closed: [Int32] = []
    private(set) var lines: [Int32: RecordingInterruptLine] = [:]
    var mapShouldFail = false

    struct MapFailure: Error {}

    func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory {
        if mapShouldFail { throw MapFailure() }
        mapped.append(regions)
        let memory = try HeapGuestMemory(regions: regions.map { GuestRegion(start: GuestAddress($0.guestAddress), size: $0.size) })
        memories.append(memory)
        return memory
    }

    func interruptLine(fd: Int32) -> any InterruptLine {
        let line = RecordingInterruptLine()
        lines[fd] = line
        return line
    }

    func close(fd: Int32) { closed.append(fd) }
}
