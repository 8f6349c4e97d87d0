// Our VMM's balloon (free page reporting) against a hostile guest: reports of any ranges, with
// any descriptor flags, and raw writes into the ring. Each input is a list of operations.
import Devices
import GuestMemory
import VirtIO
import VirtIOTestSupport

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
        var operations = 0
        while !input.isEmpty, operations < 64 {
            operations += 1
            switch input.u8() % 3 {
            case 0:
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
            case 1:
                // u16 offset (mod the rings' span), u16 value: the guest scribbles on its rings.
                try? memory.store(input.u16(), at: GuestAddress(0x1000 + UInt64(input.u16()) % 0x600))
            default:
                _ = try? driver.takeUsed()
            }
            device.queueNotified(BalloonDevice.reportingQueue)
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
