// The read-only virtio-blk device against a hostile guest: requests with any type, sector,
// header split and data/status layout, ring scribbles, and reaping, as a list of operations.
// Every request the device answers OK must have delivered exactly the image's bytes.
import Devices
import GuestMemory
import SystemSupport
import VirtIO
import VirtIOTestSupport

enum BlkFuzz {
    static let sectors: UInt64 = 64

    /// The image: byte i is a function of i, so a read can be checked without a copy.
    final class PatternBackend: BlockBackend {
        let size = BlkFuzz.sectors * 512
        static func byte(_ offset: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 13 &+ offset >> 9) }
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Errno) {
            for i in 0..<buffer.count { buffer[i] = Self.byte(offset + UInt64(i)) }
        }
    }

    /// One operation per leading byte (mod `Op.allCases.count`).
    enum Op: UInt8, CaseIterable {
        /// u8 type selector, u64 sector, u8 layout, u8 segments (mod 8), u16 segment size (mod 4096):
        /// a request. Type selector below 16 picks a known type, else the next u32 is the type.
        /// Layout bit 0: header split in two; bit 1: status shares the last data buffer;
        /// bit 2: indirect; bit 3: extra readable byte; bit 4: no status buffer. An OK read is
        /// checked against the image at once.
        case request
        /// u16 offset (mod the rings' span), u16 value: the guest scribbles on its rings.
        case poke
        /// The guest reaps used buffers.
        case reap
    }

    static let knownTypes: [UInt32] = [
        BlkRequestType.read, BlkRequestType.write, BlkRequestType.flush, BlkRequestType.getID,
        BlkRequestType.getLifetime, BlkRequestType.discard, BlkRequestType.writeZeroes, BlkRequestType.secureErase,
    ]

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        guard let guest = try? Guest() else { preconditionFailure("blk fuzz: cannot set up the device") }
        // Reads are checked as soon as they are answered, and only until the guest first
        // scribbles on its rings (after that a used head may name a chain we did not build).
        var trusted = true
        var operations = 0
        while !input.isEmpty, operations < 128 {
            operations += 1
            guard let op = Op(rawValue: input.u8() % UInt8(Op.allCases.count)) else { continue }
            switch op {
            case .request:
                let selector = input.u8()
                let type = selector < 16 ? knownTypes[Int(selector) % knownTypes.count] : input.u32()
                let sector = input.u64()
                let layout = input.u8()
                let count = Int(input.u8() % 8)
                let size = UInt32(input.u16() % 4096)
                var header = (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) } + [0, 0, 0, 0]
                header += (0..<8).map { UInt8(truncatingIfNeeded: sector >> (8 * $0)) }
                if layout & 8 != 0 { header.append(0) }
                var segments: [FakeVirtqueueDriver.Segment] =
                    layout & 1 != 0 ? [.readable(Array(header[0..<7])), .readable(Array(header[7...]))] : [.readable(header)]
                var data = Array(repeating: FakeVirtqueueDriver.Segment.writable(size), count: count)
                if layout & 16 == 0 {
                    if layout & 2 != 0, let last = data.popLast(), case .writable(let n) = last {
                        data.append(.writable(n + 1))
                    } else {
                        data.append(.writable(1))
                    }
                }
                segments += data
                let chain = layout & 4 != 0 ? try? guest.driver.addIndirect(segments) : try? guest.driver.add(segments)
                guest.device.queueNotified(0)
                guard let used = try? guest.driver.takeUsed() else { continue }
                for element in used where trusted && type == BlkRequestType.read {
                    if let chain, UInt32(chain.head) == element.head { check(sector, chain, usedLength: element.length, guest) }
                }
            case .poke:
                trusted = false
                let offset = UInt64(input.u16()) % Guest.ringSpan
                _ = try? guest.memory.store(input.u16(), at: GuestAddress(Guest.ringBase + offset))
                guest.device.queueNotified(0)
            case .reap:
                _ = try? guest.driver.takeUsed()
            }
        }
        guest.device.reset()
    }

    /// An OK read (status 0 in the last writable byte, used = data + 1) holds the image's bytes.
    private static func check(_ sector: UInt64, _ chain: FakeVirtqueueDriver.Chain, usedLength: UInt32, _ guest: Guest) {
        let total = chain.writable.reduce(0) { $0 + Int($1.length) }
        guard usedLength > 1, total == Int(usedLength), let last = chain.writable.last,
              let status = try? guest.memory.load(UInt8.self, at: last.address.adding(UInt64(last.length) - 1)), status == 0,
              let data = try? guest.driver.written(chain, count: total - 1)
        else { return }
        for (i, byte) in data.enumerated() where byte != PatternBackend.byte(sector * 512 + UInt64(i)) {
            preconditionFailure("blk fuzz: byte \(i) of an OK read at sector \(sector) differs from the image")
        }
    }

    /// A device on one fake-driver queue in 256 KiB of guest memory (rings, then buffers).
    final class Guest {
        static let ringBase: UInt64 = 0x1000
        static let ringSpan: UInt64 = 0x800
        let memory = HeapGuestMemory(size: 0x4_0000)
        let driver: FakeVirtqueueDriver
        let device = BlkDevice(backend: PatternBackend(), serial: "fuzz")

        init() throws {
            driver = try FakeVirtqueueDriver(memory: memory, size: 32, base: GuestAddress(Self.ringBase), dataSize: 0x3_0000)
            device.queues = [driver.makeQueue(maxSize: BlkDevice.queueSize, eventIndex: true)]
            try device.activate(memory: memory, interrupt: RecordingInterruptTrigger())
        }
    }

    // MARK: seeds

    static var seeds: [(name: String, bytes: [UInt8])] {
        func request(_ w: inout SeedWriter, type selector: UInt8, sector: UInt64, layout: UInt8, segments: UInt8, size: UInt16) {
            w.u8(Op.request.rawValue)
            w.u8(selector)
            w.u64(sector)
            w.u8(layout)
            w.u8(segments)
            w.u16(size)
        }
        // Reads a guest makes: one and several segments, split header, shared status, indirect.
        var reads = SeedWriter()
        request(&reads, type: 0, sector: 0, layout: 0, segments: 1, size: 512)
        request(&reads, type: 0, sector: 8, layout: 1, segments: 4, size: 1024)
        request(&reads, type: 0, sector: 63, layout: 2, segments: 1, size: 512)
        request(&reads, type: 0, sector: 2, layout: 4, segments: 7, size: 2048)
        reads.u8(Op.reap.rawValue)
        // Every other type, GET_ID included.
        var types = SeedWriter()
        for selector in UInt8(1)..<8 { request(&types, type: selector, sector: 0, layout: 0, segments: 1, size: 20) }
        types.u8(Op.reap.rawValue)
        // Malformed: past the end, overflowing sector, odd length, no status, extra header byte.
        var hostile = SeedWriter()
        request(&hostile, type: 0, sector: 63, layout: 0, segments: 2, size: 512)
        request(&hostile, type: 0, sector: .max, layout: 0, segments: 1, size: 512)
        request(&hostile, type: 0, sector: 0, layout: 0, segments: 1, size: 513)
        request(&hostile, type: 0, sector: 0, layout: 16, segments: 1, size: 512)
        request(&hostile, type: 0, sector: 0, layout: 8, segments: 1, size: 512)
        hostile.u8(Op.poke.rawValue)
        hostile.raw([0x02, 0x01, 0xff, 0xff])
        hostile.u8(Op.reap.rawValue)
        return [("reads", reads.bytes), ("types", types.bytes), ("hostile", hostile.bytes)]
    }
}
