import Devices
import FUSE
import Foundation
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

/// The virtio-fs device driven by the fake virtio driver on heap guest memory: FUSE requests laid
/// out as Linux's virtio_fs driver does (header+args readable, reply header + data writable).
@Suite struct VirtioFsDeviceTests {
    let memory = HeapGuestMemory(size: 0x100000)
    let interrupt = RecordingInterruptTrigger()

    /// A device on a fresh temp share, its request queue (1) on `driver`.
    final class Harness {
        let root: String
        let device: VirtioFsDevice
        let driver: FakeVirtqueueDriver
        let hiprio: FakeVirtqueueDriver
        private var unique: UInt64 = 1

        init(memory: HeapGuestMemory, interrupt: RecordingInterruptTrigger, readOnly: Bool = false) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("vfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let fs = try PassthroughFileSystem(PassthroughConfiguration(root: root, readOnly: readOnly))
            device = try VirtioFsDevice(tag: "kataShared", server: FUSEServer(fileSystem: fs))
            hiprio = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x4000)
            driver = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x10000), dataSize: 0x40000)
            device.queues = [hiprio.makeQueue(maxSize: VirtioFsDevice.queueSize), driver.makeQueue(maxSize: VirtioFsDevice.queueSize)]
            try device.activate(memory: memory, interrupt: interrupt)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// fuse_in_header (40 bytes) + args.
        func request(_ opcode: UInt32, node: UInt64 = 1, _ args: [UInt8] = []) -> [UInt8] {
            defer { unique += 1 }
            return le32(UInt32(40 + args.count)) + le32(opcode) + le64(unique) + le64(node) + le32(0) + le32(0)
                + le32(77) + le32(0) + args
        }

        /// Sends one request on the request queue; returns (error, payload) of the reply.
        @discardableResult
        func call(_ opcode: UInt32, node: UInt64 = 1, _ args: [UInt8] = [], reply: [UInt32] = [4096]) throws -> (Int32, [UInt8]) {
            let chain = try driver.add([.readable(request(opcode, node: node, args))] + reply.map { .writable($0) })
            device.queueNotified(1)
            let used = try driver.takeUsed()
            guard used.count == 1, used[0].head == UInt32(chain.head) else { return (Int32.min, []) }
            let bytes = try driver.written(chain, count: Int(used[0].length))
            guard bytes.count >= 16 else { return (Int32.min, bytes) }
            let length = Int(u32(bytes, 0))
            return (Int32(bitPattern: u32(bytes, 4)), Array(bytes[16..<min(length, bytes.count)]))
        }

        func initialize() throws {
            let (error, payload) = try call(26, le32(7) + le32(36) + le32(1 << 17) + le32(0xffff_ffff) + le32(0) + zeros(44))
            precondition(error == 0 && payload.count == 64, "INIT: \(error)")
        }
    }

    @Test func configSpaceHoldsTheTagAndTheQueueCount() throws {
        let fs = try PassthroughFileSystem(PassthroughConfiguration(root: "/tmp"))
        let device = try VirtioFsDevice(tag: "kataShared", server: FUSEServer(fileSystem: fs), requestQueues: 2)
        #expect(device.deviceType.rawValue == 26)
        #expect(device.queues.count == 3)
        let config = device.configSpace
        #expect(config.count == 40)
        #expect(Array(config[0..<10]) == Array("kataShared".utf8) && config[10..<36].allSatisfy { $0 == 0 })
        #expect(Array(config[36..<40]) == [2, 0, 0, 0])
        #expect(throws: VirtioFsError.invalidTag(String(repeating: "x", count: 37))) {
            try VirtioFsDevice(tag: String(repeating: "x", count: 37), server: FUSEServer(fileSystem: fs))
        }
        #expect(throws: VirtioFsError.invalidTag("")) { try VirtioFsDevice(tag: "", server: FUSEServer(fileSystem: fs)) }
        #expect(throws: VirtioFsError.invalidRequestQueueCount(0)) {
            try VirtioFsDevice(tag: "t", server: FUSEServer(fileSystem: fs), requestQueues: 0)
        }
    }

    @Test func initLookupGetattrAndReadRoundTrip() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        // Before INIT every request gets EIO.
        #expect(try h.call(1, Array("hello.txt".utf8) + [0]).0 == -EIO)
        try h.initialize()
        let content = Array("hello from the host\n".utf8)
        try Data(content).write(to: URL(fileURLWithPath: h.root + "/hello.txt"))

        let (lookupError, entry) = try h.call(1, Array("hello.txt".utf8) + [0])
        #expect(lookupError == 0)
        let node = u64(entry, 0)
        #expect(node > 1 && u64(entry, 48) == UInt64(content.count))

        let (getattrError, attr) = try h.call(3, node: node, le32(0) + le32(0) + le64(0))
        #expect(getattrError == 0 && u64(attr, 24) == UInt64(content.count))

        let (openError, opened) = try h.call(14, node: node, le32(UInt32(O_RDONLY)) + le32(0))
        #expect(openError == 0)
        let fh = u64(opened, 0)
        // READ into a 16-byte header buffer plus a separate data buffer, as the driver lays it out.
        let readArgs = le64(fh) + le64(6) + le32(100) + le32(0) + le64(0) + le32(0) + le32(0)
        let chain = try h.driver.add([.readable(h.request(15, node: node, readArgs)), .writable(16), .writable(100)])
        h.device.queueNotified(1)
        let used = try h.driver.takeUsed()
        #expect(used == [.init(head: UInt32(chain.head), length: UInt32(16 + content.count - 6))])
        let reply = try h.driver.written(chain, count: 16 + content.count - 6)
        #expect(u32(reply, 4) == 0 && Array(reply[16...]) == Array(content[6...]))
        #expect(interrupt.usedBufferCount >= 4 && h.device.requestsServed == 6)
    }

    @Test func writeLandsInTheHostFileAndForgetsGoOnHiprio() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.initialize()
        // CREATE "new.txt"
        let (createError, created) = try h.call(35, le32(UInt32(O_RDWR | O_CREAT)) + le32(0o100644) + le32(0o022) + le32(0) + Array("new.txt".utf8) + [0])
        #expect(createError == 0)
        let node = u64(created, 0), fh = u64(created, 128)
        // WRITE with the data in its own readable buffer.
        let data = Array("written by the guest".utf8)
        let writeArgs = le64(fh) + le64(0) + le32(UInt32(data.count)) + le32(0) + le64(0) + le32(0) + le32(0)
        var header = h.request(16, node: node, writeArgs)
        header.replaceSubrange(0..<4, with: le32(UInt32(header.count + data.count)))
        let chain = try h.driver.add([.readable(header), .readable(data), .writable(24)])
        h.device.queueNotified(1)
        #expect(try h.driver.takeUsed().map(\.length) == [24])
        #expect(u32(try h.driver.written(chain, count: 24), 16) == UInt32(data.count))
        #expect(try Data(contentsOf: URL(fileURLWithPath: h.root + "/new.txt")) == Data(data))
        // FORGET on the hiprio queue: completed without a reply.
        try h.hiprio.add([.readable(h.request(2, node: node, le64(1)))])
        h.device.queueNotified(0)
        #expect(try h.hiprio.takeUsed().map(\.length) == [0])
    }

    @Test func readOnlyShareRefusesChanges() throws {
        let h = try Harness(memory: memory, interrupt: interrupt, readOnly: true)
        try h.initialize()
        try Data("x".utf8).write(to: URL(fileURLWithPath: h.root + "/f"))
        #expect(try h.call(9, le32(0o755) + le32(0) + Array("d".utf8) + [0]).0 == -EROFS)
        let node = u64(try h.call(1, Array("f".utf8) + [0]).1, 0)
        #expect(try h.call(14, node: node, le32(UInt32(O_WRONLY)) + le32(0)).0 == -EROFS)
        #expect(try h.call(14, node: node, le32(UInt32(O_RDONLY)) + le32(0)).0 == 0)
        #expect(try h.call(10, Array("f".utf8) + [0]).0 == -EROFS)
        #expect(FileManager.default.fileExists(atPath: h.root + "/f"))
    }

    @Test func publishesAvailEventSoTheDriverKicksAgain() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        h.device.queues[1] = h.driver.makeQueue(maxSize: VirtioFsDevice.queueSize, eventIndex: true)
        try h.driver.setUsedEvent(0)
        try h.initialize()
        try h.driver.add([.readable(h.request(1, Array("x".utf8) + [0])), .writable(64)])
        try h.driver.add([.readable(h.request(1, Array("y".utf8) + [0])), .writable(64)])
        h.device.queueNotified(1)
        #expect(try h.driver.takeUsed().count == 2)
        #expect(try h.driver.availableEvent() == h.driver.availableIndex)
    }

    // MARK: hostile chains

    @Test func replyAreaTooSmallCompletesTheChainWithoutAReply() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.initialize()
        let chain = try h.driver.add([.readable(h.request(1, Array("x".utf8) + [0])), .writable(8)])
        h.device.queueNotified(1)
        #expect(try h.driver.takeUsed() == [.init(head: UInt32(chain.head), length: 0)])
        #expect(h.device.unanswerableRequests == 1 && !h.device.queues[1].isBroken)
        // A reply buffer that holds a header but not the entry: ERANGE, queue still fine.
        #expect(try h.call(1, Array("x".utf8) + [0], reply: [16]).0 == -ENOENT)
        try Data("y".utf8).write(to: URL(fileURLWithPath: h.root + "/y"))
        #expect(try h.call(1, Array("y".utf8) + [0], reply: [16]).0 == -ERANGE)
        #expect(try h.call(1, Array("y".utf8) + [0]).0 == 0)
    }

    @Test func headerLengthThatDisagreesWithTheBuffersIsRefused() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.initialize()
        var bytes = h.request(1, Array("x".utf8) + [0])
        bytes.replaceSubrange(0..<4, with: le32(4096))
        let chain = try h.driver.add([.readable(bytes), .writable(64)])
        h.device.queueNotified(1)
        #expect(try h.driver.takeUsed().map(\.length) == [16])
        #expect(Int32(bitPattern: u32(try h.driver.written(chain, count: 16), 4)) == -EINVAL)
    }

    @Test func descriptorIndexOutOfRangeBreaksTheQueue() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.driver.writeDescriptor(Descriptor(address: 0x20000, length: 64, flags: DescriptorFlag.next, next: 99), at: 0)
        try h.driver.publish(head: 0)
        h.device.queueNotified(1)
        #expect(h.device.queues[1].isBroken && interrupt.needsResetCount == 1)
        #expect(try h.driver.takeUsed().isEmpty)
        // Later kicks do nothing.
        h.device.queueNotified(1)
        #expect(interrupt.needsResetCount == 2 && h.device.requestsServed == 0)
    }

    @Test func bufferPastTheEndOfMemoryBreaksTheQueue() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.driver.writeDescriptor(Descriptor(address: 0xfff00, length: 0x200, flags: DescriptorFlag.write, next: 0), at: 0)
        try h.driver.publish(head: 0)
        h.device.queueNotified(1)
        #expect(h.device.queues[1].isBroken && interrupt.needsResetCount == 1)
        // Also a length that wraps the address space.
        let other = try Harness(memory: memory, interrupt: interrupt)
        try other.hiprio.writeDescriptor(Descriptor(address: UInt64.max - 8, length: 64, flags: 0, next: 0), at: 0)
        try other.hiprio.publish(head: 0)
        other.device.queueNotified(0)
        #expect(other.device.queues[0].isBroken && !other.device.queues[1].isBroken)
    }

    @Test func resetEndsTheFUSESessionSoANewInitWorks() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        try h.initialize()
        #expect(try h.call(26, le32(7) + le32(36) + le32(0) + le32(0)).0 == -EIO)
        h.device.reset()
        h.device.queues = [h.hiprio.makeQueue(), h.driver.makeQueue()]
        try h.device.activate(memory: memory, interrupt: interrupt)
        try h.initialize()
    }
}

private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
private func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
private func zeros(_ n: Int) -> [UInt8] { [UInt8](repeating: 0, count: n) }
private func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
    guard at + 4 <= b.count else { return 0 }
    return (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
}
private func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
    guard at + 8 <= b.count else { return 0 }
    return (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
}
