// Our VMM's block and balloon devices against a hostile guest: requests with any header, sector,
// type and buffer layout for the read-only disk; free page reports of any ranges for the balloon;
// and raw writes into the rings. Each input is a list of operations.
import Devices
import GuestMemory
import SystemSupport
import VirtIO
import VirtIOTestSupport

#if canImport(Glibc)
import Glibc
#endif

enum BlockFuzz {
    /// A 64 KiB disk image, written once per process, read-only to the device.
    static let imagePath: String = {
        let path = "/tmp/kata-fuzz-block-\(getpid()).img"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "block fuzz: cannot create \(path)")
        let bytes = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return path
    }()

    /// One operation per leading byte (mod 3).
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let memory = HeapGuestMemory(size: 0x80000)
        guard let device = try? BlockDevice(path: imagePath),
            let driver = try? FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x40000)
        else { preconditionFailure("block fuzz: cannot set up the device") }
        device.queues = [driver.makeQueue(maxSize: BlockDevice.queueSize, eventIndex: true)]
        guard (try? device.activate(memory: memory, interrupt: RecordingInterruptTrigger())) != nil else { return }
        OperationLoop.run(&input, memory: memory, driver: driver, ringSpan: 0x1000, kick: { device.queueNotified(0) }) { input in
            // u32 type (mod 16), u64 sector, u8 layout, u16 data length (mod 8192): a request.
            let type = input.u32() % 16
            let sector = input.u64()
            let layout = input.u8()
            let length = UInt32(input.u16() % 8192)
            var header = withUnsafeBytes(of: type.littleEndian, Array.init) + [0, 0, 0, 0]
            header += withUnsafeBytes(of: sector.littleEndian, Array.init)
            if layout & 1 != 0 { header = Array(header.prefix(Int(layout >> 4))) }  // short headers
            var segments: [FakeVirtqueueDriver.Segment] = header.isEmpty ? [] : [.readable(header)]
            if layout & 2 != 0 { segments.append(.readable([UInt8](repeating: 0xee, count: 512))) }
            if length > 0 { segments.append(.writable(length)) }
            if layout & 4 == 0 { segments.append(.writable(1)) }
            if !segments.isEmpty { _ = try? driver.add(segments) }
        }
    }

    static let seeds: [(name: String, bytes: [UInt8])] = {
        func request(type: UInt32, sector: UInt64, layout: UInt8, length: UInt16) -> [UInt8] {
            [0] + withUnsafeBytes(of: type, Array.init) + withUnsafeBytes(of: sector, Array.init) + [layout]
                + withUnsafeBytes(of: length, Array.init)
        }
        return [
            ("read-first-sector", request(type: 0, sector: 0, layout: 0, length: 512) + [2]),
            ("read-past-the-end", request(type: 0, sector: 127, layout: 0, length: 1024) + [2]),
            ("write-refused", request(type: 1, sector: 0, layout: 2, length: 0) + [2]),
            ("get-id", request(type: 8, sector: 0, layout: 0, length: 20) + [2]),
            ("short-header-no-status", request(type: 0, sector: 0, layout: 0x45, length: 512) + [2]),
        ]
    }()
}

enum BalloonFuzz {
    /// One operation per leading byte (mod 3).
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let memory = HeapGuestMemory(size: 0x80000)
        let device = BalloonDevice()
        device.ackedFeatures = VirtioFeature.version1 | VirtioFeature.eventIndex | BalloonDevice.freePageReporting
        guard let driver = try? FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x1000)
        else { preconditionFailure("balloon fuzz: cannot set up the device") }
        device.queues[BalloonDevice.reportingQueue] = driver.makeQueue(maxSize: BalloonDevice.queueSize, eventIndex: true)
        guard (try? device.activate(memory: memory, interrupt: RecordingInterruptTrigger())) != nil else { return }
        let kick = { device.queueNotified(BalloonDevice.reportingQueue) }
        OperationLoop.run(&input, memory: memory, driver: driver, ringSpan: 0x600, kick: kick) { input in
            // u8 count (mod 4 + 1), then per range u64 address, u32 length, u8 flags: a report.
            let count = Int(input.u8() % 4) + 1
            for i in 0..<count {
                let address = input.u64(), length = input.u32(), flags = input.u8()
                let last = i == count - 1
                let descriptor = Descriptor(
                    address: address, length: length,
                    flags: (flags & 1 == 0 ? DescriptorFlag.write : 0) | (last ? 0 : DescriptorFlag.next),
                    next: last ? 0 : UInt16(i + 1))
                try? driver.writeDescriptor(descriptor, at: UInt16(i))
            }
            try? driver.publish(head: 0)
        }
    }

    static let seeds: [(name: String, bytes: [UInt8])] = {
        func report(_ address: UInt64, _ length: UInt32, _ flags: UInt8) -> [UInt8] {
            withUnsafeBytes(of: address, Array.init) + withUnsafeBytes(of: length, Array.init) + [flags]
        }
        return [
            ("one-page", [0, 0] + report(0x40000, 4096, 0) + [2]),
            ("unaligned", [0, 0] + report(0x40800, 4096, 0) + [2]),
            ("outside-ram", [0, 1] + report(0x40000, 4096, 0) + report(0xffff_ffff_ffff_f000, 8192, 0) + [2]),
            ("readable", [0, 0] + report(0x40000, 4096, 1) + [2]),
        ]
    }()
}

/// The loop both targets share: up to 64 operations, one per leading byte (mod 3): 0 the target's
/// own request, then a kick; 1 the guest scribbling on its rings (u16 offset mod `ringSpan` from
/// the queue's base, u16 value), then a kick; 2 the guest reaping used buffers.
enum OperationLoop {
    static func run(
        _ input: inout FuzzInput, memory: HeapGuestMemory, driver: FakeVirtqueueDriver, ringSpan: UInt64, kick: () -> Void,
        request: (inout FuzzInput) -> Void
    ) {
        var operations = 0
        while !input.isEmpty, operations < 64 {
            operations += 1
            switch input.u8() % 3 {
            case 0:
                request(&input)
                kick()
            case 1:
                let offset = UInt64(input.u16()) % ringSpan
                try? memory.store(input.u16(), at: GuestAddress(0x1000 + offset))
                kick()
            default:
                _ = try? driver.takeUsed()
            }
        }
    }
}

