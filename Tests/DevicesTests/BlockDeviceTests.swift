// The read-only virtio-blk: reads return the file's bytes at start, middle and end; every
// malformed request a guest can send gets IOERR (or UNSUPP) and comes back; nothing is written.

import Devices
import Foundation
import GuestMemory
import SystemSupport
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct BlockDeviceTests {
    let memory = HeapGuestMemory(size: 0x200000)
    let interrupt = RecordingInterruptTrigger()
    static let disk: [UInt8] = (0..<(64 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

    /// A device over a fresh 64 KiB file holding `disk`, its queue driven by the returned driver.
    func makeDevice(size: Int = 64 * 1024) throws -> (BlockDevice, FakeVirtqueueDriver, String) {
        let path = NSTemporaryDirectory() + "blk-\(UUID().uuidString)"
        try Data(Self.disk.prefix(size) + [UInt8](repeating: 0, count: max(0, size - Self.disk.count))).write(to: URL(fileURLWithPath: path))
        let device = try BlockDevice(path: path)
        let driver = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x180000)
        device.queues = [driver.makeQueue(maxSize: BlockDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
        return (device, driver, path)
    }

    static func header(type: UInt32, sector: UInt64) -> [UInt8] {
        withUnsafeBytes(of: type.littleEndian, Array.init) + [0, 0, 0, 0] + withUnsafeBytes(of: sector.littleEndian, Array.init)
    }

    /// Sends one request; the used length and the data and status the device wrote.
    func request(
        _ driver: FakeVirtqueueDriver, _ device: BlockDevice, _ segments: [FakeVirtqueueDriver.Segment]
    ) throws -> (used: UInt32, written: [UInt8]) {
        let chain = try driver.add(segments)
        device.queueNotified(0)
        let used = try #require(try driver.takeUsed().first)
        let writable = segments.reduce(0) { n, s in if case .writable(let l) = s { return n + Int(l) } else { return n } }
        return (used.length, try driver.written(chain, count: writable))
    }

    @Test func readsReturnTheFilesBytesAtStartMiddleAndEnd() throws {
        let (device, driver, path) = try makeDevice()
        defer { unlink(path) }
        #expect(device.capacityBytes == 65536)
        #expect(Array(device.configSpace.prefix(8)) == withUnsafeBytes(of: UInt64(128).littleEndian, Array.init))
        for (sector, count) in [(UInt64(0), 512), (17, 4096), (120, 4096), (127, 512)] {
            let r = try request(driver, device, [.readable(Self.header(type: 0, sector: sector)), .writable(UInt32(count)), .writable(1)])
            #expect(r.used == UInt32(count + 1))
            #expect(Array(r.written.prefix(count)) == Array(Self.disk[Int(sector) * 512 ..< Int(sector) * 512 + count]))
            #expect(r.written.last == 0, "status OK")
        }
        // Data and status in one descriptor, and data over several.
        let one = try request(driver, device, [.readable(Self.header(type: 0, sector: 2)), .writable(513)])
        #expect(one.used == 513 && Array(one.written.prefix(512)) == Array(Self.disk[1024..<1536]) && one.written[512] == 0)
        let many = try request(driver, device, [.readable(Self.header(type: 0, sector: 4)), .writable(100), .writable(412), .writable(1)])
        #expect(Array(many.written.prefix(512)) == Array(Self.disk[2048..<2560]) && many.written[512] == 0)
        let expectedBytes: UInt64 = 512 + 4096 + 4096 + 512 + 512 + 512
        #expect(device.bytesRead == expectedBytes)
        #expect(device.refused == 0)
    }

    @Test(arguments: [
        (UInt64(128), 512),  // past the end
        (UInt64(127), 1024),  // runs past the end
        (UInt64.max, 512),  // sector * 512 overflows
        (UInt64.max / 512, 512),  // huge but no overflow
        (UInt64(0), 100),  // not whole sectors
        (UInt64(0), BlockDevice.maxRequestBytes + 512),  // too large
    ])
    func readsOutsideTheDiskOrNotWholeSectorsFail(sector: UInt64, count: Int) throws {
        let (device, driver, path) = try makeDevice(size: count > 65536 ? 4 << 20 : 65536)
        defer { unlink(path) }
        let r = try request(driver, device, [.readable(Self.header(type: 0, sector: sector)), .writable(UInt32(count)), .writable(1)])
        #expect(r.used == 1 && r.written.last == 1, "IOERR, no data")
        #expect(r.written.dropLast().allSatisfy { $0 == 0 })
        #expect(device.refused == 1 && interrupt.needsResetCount == 0)
    }

    @Test func writesFailAndTheFileIsUntouched() throws {
        let (device, driver, path) = try makeDevice()
        defer { unlink(path) }
        for type: UInt32 in [1, 11, 13, 14] {
            let r = try request(driver, device, [.readable(Self.header(type: type, sector: 0) + [UInt8](repeating: 0xee, count: 512)), .writable(1)])
            #expect(r.used == 1 && r.written == [1], "type \(type) must be IOERR")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(Self.disk))
    }

    @Test func getIDFlushAndUnknownTypes() throws {
        let (device, driver, path) = try makeDevice()
        defer { unlink(path) }
        let id = try request(driver, device, [.readable(Self.header(type: 8, sector: 0)), .writable(20), .writable(1)])
        #expect(id.used == 21 && Array(id.written.prefix(15)) == Array("kata-swift-root".utf8) && id.written[20] == 0)
        #expect(try request(driver, device, [.readable(Self.header(type: 4, sector: 0)), .writable(1)]).written == [0])
        #expect(try request(driver, device, [.readable(Self.header(type: 10, sector: 0)), .writable(1)]).written == [2])
        #expect(try request(driver, device, [.readable(Self.header(type: 0x7777, sector: 0)), .writable(1)]).written == [2])
    }

    @Test func malformedRequestsComeBackWithoutCrashing() throws {
        let (device, driver, path) = try makeDevice()
        defer { unlink(path) }
        // Header too short: IOERR in the status byte.
        #expect(try request(driver, device, [.readable([0, 0, 0, 0]), .writable(512), .writable(1)]).written.last == 1)
        // No device-writable byte at all: nowhere to put a status; returned with length 0.
        #expect(try request(driver, device, [.readable(Self.header(type: 0, sector: 0))]).used == 0)
        // Only a status byte: a zero-length read is fine.
        #expect(try request(driver, device, [.readable(Self.header(type: 0, sector: 0)), .writable(1)]).written == [0])
        #expect(interrupt.needsResetCount == 0)
        // A file that is not whole sectors is refused up front.
        let odd = NSTemporaryDirectory() + "blk-odd-\(UUID().uuidString)"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: odd))
        defer { unlink(odd) }
        #expect(throws: Errno.self) { try BlockDevice(path: odd) }
        #expect(throws: Errno.self) { try BlockDevice(path: odd + ".missing") }
    }
}
