import GuestMemory
import VirtIO

/// A device with failure switches, for transport tests (like Firecracker's DummyDevice).
final class DummyDevice: VirtioDevice {
    let deviceType = VirtioDeviceType(rawValue: 42)
    let availableFeatures: UInt64 = VirtioFeature.common | 0b101
    var ackedFeatures: UInt64 = 0
    var queues = DummyDevice.makeQueues(count: 2, maxSize: 16)
    var configSpace: [UInt8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa]

    var activateShouldFail = false
    /// Whether a notify pops from the queue (to exercise broken chains).
    var popOnNotify = false
    private(set) var activations = 0
    private(set) var resets = 0
    private(set) var notified: [Int] = []
    private(set) var configWrites: [(Int, [UInt8])] = []
    private(set) var interrupt: (any InterruptTrigger)?
    private var memory: (any GuestMemory)?

    func writeConfig(offset: Int, bytes: [UInt8]) {
        configWrites.append((offset, bytes))
        configSpace.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        if activateShouldFail { throw .backendUnavailable("switched off by the test") }
        activations += 1
        self.memory = memory
        self.interrupt = interrupt
    }

    func queueNotified(_ index: Int) {
        notified.append(index)
        if popOnNotify, let memory { _ = try? queues[index].popAvailable(memory: memory) }
    }

    func reset() {
        resets += 1
        interrupt = nil
        memory = nil
    }
}
