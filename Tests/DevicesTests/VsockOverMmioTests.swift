import Devices
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

/// The vsock device behind the MMIO transport: the driver's view of its identity and config.
@Suite struct VsockOverMmioTests {
    @Test func probeReadsTypeFeaturesAndGuestCID() throws {
        let memory = HeapGuestMemory(size: 0x10000)
        let device = VsockDevice(guestCID: 0x1_0000_0003, backend: VsockMuxer())
        let transport = MmioTransport(device: device, memory: memory, interruptLine: RecordingInterruptLine())
        func read32(_ offset: UInt64) -> UInt32 {
            transport.read(offset: offset, count: 4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
        }
        #expect(read32(MmioRegister.deviceID.rawValue) == 19)
        #expect(read32(MmioRegister.queueNumMax.rawValue) == 256)
        #expect(read32(0x100) == 3 && read32(0x104) == 1)
        #expect(transport.read(offset: 0x100, count: 8) == [3, 0, 0, 0, 1, 0, 0, 0])
        #expect(transport.read(offset: 0x108, count: 1) == [0], "beyond the 8-byte config")
        #expect(transport.ignoredAccesses == 1)

        let rng = MmioTransport(device: RngDevice(), memory: memory, interruptLine: RecordingInterruptLine())
        #expect(rng.read(offset: MmioRegister.deviceID.rawValue, count: 4) == [4, 0, 0, 0])
        #expect(rng.read(offset: 0x100, count: 1) == [0] && rng.ignoredAccesses == 1)
    }
}
