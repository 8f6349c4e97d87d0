import Devices
import Glibc
import GuestMemory
import SystemSupport
import Testing
import VirtIO
import VirtIOTestSupport

/// A temporary image file whose bytes differ at every offset that matters (sector and position).
final class TemporaryImage {
    let path: String
    let bytes: [UInt8]

    init(size: Int) throws {
        var template = Array("/tmp/kata-blk-test-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw Errno.current }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 9) &* 7) }
        let owned = FileDescriptor(owning: fd)
        try owned.writeAll(bytes)
    }

    deinit { unlink(path) }

    func slice(sector: Int, count: Int) -> [UInt8] { Array(bytes[(sector * 512)..<(sector * 512 + count)]) }
}

func blkHeader(type: UInt32, sector: UInt64) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) } + [0, 0, 0, 0]
        + (0..<8).map { UInt8(truncatingIfNeeded: sector >> (8 * $0)) }
}

@Suite struct BlkDeviceTests {
    static let sectors = 128
    let memory = HeapGuestMemory(size: 0x140_0000)
    let interrupt = RecordingInterruptTrigger()
    let image: TemporaryImage
    let device: BlkDevice
    let driver: FakeVirtqueueDriver

    init() throws {
        image = try TemporaryImage(size: Self.sectors * 512)
        device = BlkDevice(backend: try FileBlockBackend(path: image.path), serial: "blk-serial-1")
        driver = try FakeVirtqueueDriver(memory: memory, size: 256, base: GuestAddress(0x1000), dataSize: 0x110_0000)
        device.queues = [driver.makeQueue(maxSize: BlkDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
    }

    /// Submits a read of `lengths` data segments at `sector`; returns the chain.
    func read(sector: UInt64, _ lengths: [UInt32]) throws -> FakeVirtqueueDriver.Chain {
        try driver.add([.readable(blkHeader(type: BlkRequestType.read, sector: sector))] + lengths.map { .writable($0) } + [.writable(1)])
    }

    func status(_ chain: FakeVirtqueueDriver.Chain) throws -> UInt8 {
        let last = try #require(chain.writable.last)
        return try memory.load(at: last.address.adding(UInt64(last.length) - 1))
    }

    func data(_ chain: FakeVirtqueueDriver.Chain) throws -> [UInt8] {
        try driver.written(chain, count: Int(chain.writable.dropLast().reduce(0) { $0 + $1.length }))
    }

    @Test func configSpaceAndFeatures() throws {
        let config = device.configSpace
        #expect(config.count == BlkDevice.configSize && config[24...].allSatisfy { $0 == 0 })
        #expect(config[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) } == UInt64(Self.sectors))
        #expect(config[12..<16] == [126, 0, 0, 0][...])
        #expect(config[20..<24] == [0, 2, 0, 0][...])
        #expect(device.deviceType == .block)
        let wanted = VirtioFeature.version1 | VirtioFeature.eventIndex | BlkFeature.readOnly | BlkFeature.blockSize | BlkFeature.segmentMax
        #expect(device.availableFeatures & wanted == wanted)
        #expect(device.availableFeatures & BlkFeature.flush == 0)
    }

    @Test func readsAtStartMiddleAndEndReturnTheFilesBytes() throws {
        let start = try read(sector: 0, [512, 512])
        let middle = try read(sector: 60, [2048])
        let end = try read(sector: UInt64(Self.sectors - 1), [512])
        device.queueNotified(0)
        #expect(try driver.takeUsed() == [
            .init(head: UInt32(start.head), length: 1025), .init(head: UInt32(middle.head), length: 2049),
            .init(head: UInt32(end.head), length: 513),
        ])
        #expect(try data(start) == image.slice(sector: 0, count: 1024))
        #expect(try data(middle) == image.slice(sector: 60, count: 2048))
        #expect(try data(end) == image.slice(sector: Self.sectors - 1, count: 512))
        for chain in [start, middle, end] { #expect(try status(chain) == BlkStatus.ok.rawValue) }
        #expect(device.bytesRead == 1024 + 2048 + 512 && device.requestsServed == 3 && device.requestsFailed == 0)
        #expect(interrupt.usedBufferCount == 1)
    }

    @Test func headerAndStatusMaySplitOrShareDescriptors() throws {
        let header = blkHeader(type: BlkRequestType.read, sector: 5)
        // Header in two pieces, data and status in one writable buffer.
        let chain = try driver.add([.readable(Array(header[0..<8])), .readable(Array(header[8...])), .writable(513)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [513])
        #expect(try driver.written(chain, count: 513) == image.slice(sector: 5, count: 512) + [0])
    }

    @Test func readsPastTheEndFailWithoutTouchingData() throws {
        let straddling = try read(sector: UInt64(Self.sectors - 1), [1024])
        let beyond = try read(sector: UInt64(Self.sectors), [512])
        let emptyAtEnd = try read(sector: UInt64(Self.sectors), [])
        let emptyBeyond = try read(sector: UInt64(Self.sectors + 1), [])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [1, 1, 1, 1])
        #expect(try status(straddling) == BlkStatus.ioError.rawValue)
        #expect(try status(beyond) == BlkStatus.ioError.rawValue)
        #expect(try status(emptyAtEnd) == BlkStatus.ok.rawValue)
        #expect(try status(emptyBeyond) == BlkStatus.ioError.rawValue)
        #expect(try data(straddling) == Array(repeating: 0, count: 1024))
        #expect(device.bytesRead == 0)
    }

    @Test func overflowingSectorNumbersAreRefused() throws {
        let chains = try [UInt64.max, UInt64.max / 512 + 1, UInt64(1) << 63, UInt64.max - 1].map { try read(sector: $0, [512]) }
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [1, 1, 1, 1])
        for chain in chains { #expect(try status(chain) == BlkStatus.ioError.rawValue) }
    }

    @Test func zeroLengthReadSucceedsAndReadsNothing() throws {
        let chain = try read(sector: 3, [])
        device.queueNotified(0)
        #expect(try driver.takeUsed() == [.init(head: UInt32(chain.head), length: 1)])
        #expect(try status(chain) == BlkStatus.ok.rawValue && device.bytesRead == 0)
    }

    @Test func lengthsNotAMultipleOf512AreRefused() throws {
        let odd = try read(sector: 0, [513])
        let small = try read(sector: 0, [100, 412, 1])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [1, 1])
        #expect(try status(odd) == BlkStatus.ioError.rawValue && status(small) == BlkStatus.ioError.rawValue)
        #expect(try data(odd) == Array(repeating: 0, count: 513))
    }

    @Test func requestsOverTheSizeLimitAreRefused() throws {
        let image = try TemporaryImage(size: Int(BlkRequest.maxDataBytes) + 4096)
        let device = BlkDevice(backend: try FileBlockBackend(path: image.path))
        device.queues = [driver.makeQueue(maxSize: BlkDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
        let big = try read(sector: 0, [UInt32(BlkRequest.maxDataBytes) + 512])
        let limit = try read(sector: 1, [UInt32(BlkRequest.maxDataBytes)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [1, UInt32(BlkRequest.maxDataBytes) + 1])
        #expect(try status(big) == BlkStatus.ioError.rawValue)
        #expect(try data(limit) == image.slice(sector: 1, count: Int(BlkRequest.maxDataBytes)))
    }

    @Test func shortOrMisplacedHeadersAreRefused() throws {
        let short = try driver.add([.readable(Array(blkHeader(type: 0, sector: 0)[0..<15])), .writable(512), .writable(1)])
        let noHeader = try driver.add([.writable(512), .writable(1)])
        let extra = try driver.add([.readable(blkHeader(type: 0, sector: 0) + [0]), .writable(512), .writable(1)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [1, 1, 1])
        for chain in [short, noHeader, extra] { #expect(try status(chain) == BlkStatus.ioError.rawValue) }
        #expect(device.bytesRead == 0 && device.requestsFailed == 3)
    }

    @Test func aStatusInAReadableDescriptorIsNeverWritten() throws {
        // No device-writable byte at all: nothing to report into, returned with length 0.
        let chain = try driver.add([.readable(blkHeader(type: 0, sector: 0)), .readable([0xaa])])
        device.queueNotified(0)
        #expect(try driver.takeUsed() == [.init(head: UInt32(chain.head), length: 0)])
        #expect(try memory.load(UInt8.self, at: chain.readable[1].address) == 0xaa)
        #expect(device.requestsFailed == 1 && !device.queues[0].isBroken)
        // Readable after writable breaks the queue (virtio 2.7.4.2); the device asks for a reset.
        try driver.add([.readable(blkHeader(type: 0, sector: 0)), .writable(512), .readable([0])])
        device.queueNotified(0)
        #expect(device.queues[0].isBroken && interrupt.needsResetCount == 1)
    }

    @Test func writesAreRefusedAndOtherTypesUnsupported() throws {
        let out = try driver.add([.readable(blkHeader(type: BlkRequestType.write, sector: 0) + Array(repeating: 0xff, count: 512)), .writable(1)])
        let types = [BlkRequestType.flush, BlkRequestType.discard, BlkRequestType.writeZeroes, BlkRequestType.secureErase,
                     BlkRequestType.getLifetime, 2, 99, UInt32.max]
        let others = try types.map { try driver.add([.readable(blkHeader(type: $0, sector: 0)), .writable(1)]) }
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == Array(repeating: 1, count: 1 + types.count))
        #expect(try status(out) == BlkStatus.ioError.rawValue)
        for chain in others { #expect(try status(chain) == BlkStatus.unsupported.rawValue) }
        #expect(try readWholeFile(image.path) == image.bytes)
    }

    @Test func getIDReturnsTheSerialNulPadded() throws {
        let chain = try driver.add([.readable(blkHeader(type: BlkRequestType.getID, sector: 0)), .writable(20), .writable(1)])
        let short = try driver.add([.readable(blkHeader(type: BlkRequestType.getID, sector: 0)), .writable(4)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [21, 4])
        #expect(try driver.written(chain, count: 20) == Array("blk-serial-1".utf8) + Array(repeating: 0, count: 8))
        #expect(try status(chain) == BlkStatus.ok.rawValue)
        #expect(try driver.written(short, count: 3) == Array("blk".utf8))
        let long = BlkDevice(backend: try FileBlockBackend(path: image.path), serial: String(repeating: "x", count: 40))
        long.queues = [driver.makeQueue(maxSize: BlkDevice.queueSize)]
        try long.activate(memory: memory, interrupt: interrupt)
        let capped = try driver.add([.readable(blkHeader(type: BlkRequestType.getID, sector: 0)), .writable(32), .writable(1)])
        long.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [21])
        #expect(try driver.written(capped, count: 32) == Array(repeating: UInt8(ascii: "x"), count: 20) + Array(repeating: 0, count: 12))
    }

    @Test func manySegmentsDirectAndIndirect() throws {
        let segments = Array(repeating: UInt32(512), count: Int(BlkDevice.segmentMax))
        let direct = try read(sector: 1, segments)
        let indirect = try driver.addIndirect(
            [.readable(blkHeader(type: BlkRequestType.read, sector: 2))] + segments.map { .writable($0) } + [.writable(1)])
        device.queueNotified(0)
        let length = UInt32(BlkDevice.segmentMax) * 512
        #expect(try driver.takeUsed().map(\.length) == [length + 1, length + 1])
        #expect(try data(direct) == image.slice(sector: 1, count: Int(length)))
        #expect(try driver.written(indirect, count: Int(length)) == image.slice(sector: 2, count: Int(length)))
    }

    @Test func aChainLongerThanTheQueueBreaksItWithoutACrash() throws {
        let small = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x130_0000))
        device.queues = [small.makeQueue(maxSize: BlkDevice.queueSize)]
        try small.addIndirect([.readable(blkHeader(type: 0, sector: 0))] + Array(repeating: .writable(512), count: 9) + [.writable(1)])
        device.queueNotified(0)
        #expect(device.queues[0].isBroken && interrupt.needsResetCount == 1)
        #expect(try small.takeUsed().isEmpty && device.bytesRead == 0)
    }

    @Test func imagesMustBeSectorMultiplesAndOpenedReadOnly() throws {
        let odd = try TemporaryImage(size: 1000)
        #expect(throws: BlockBackendError.sizeNotSectorMultiple(size: 1000)) { try FileBlockBackend(path: odd.path) }
        #expect(throws: BlockBackendError.notReadOnly) {
            try FileBlockBackend(descriptor: try FileDescriptor.open(image.path, O_RDWR))
        }
        #expect(throws: BlockBackendError.open(path: "/nonexistent/kata-blk", .noEntry)) {
            try FileBlockBackend(path: "/nonexistent/kata-blk")
        }
        #expect(try FileBlockBackend(path: image.path).size == UInt64(Self.sectors * 512))
        #expect("\(BlockBackendError.sizeNotSectorMultiple(size: 1000))".contains("not a multiple of 512"))
    }
}
