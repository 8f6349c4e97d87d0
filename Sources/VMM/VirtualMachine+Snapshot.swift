// Saving a VM to a snapshot file and checking one against a configuration before it is restored
// (the `.snapshot` payload). docs/snapshots.md says what is saved and what is not yet.
import KVM
import SystemSupport
import VirtIO

extension VirtualMachine {
    /// Saves the VM to `path`: the in-kernel state of the VM and every vCPU, each device's
    /// record, and guest RAM. The vCPUs must be parked (`pause()`) or not started; the devices
    /// are held between requests while it runs. A device that cannot be saved as it is (a
    /// vsock connection open, virtio-fs mounted, a device model without snapshot support)
    /// refuses, and nothing is written.
    public func saveSnapshot(to path: String) throws(VMMError) {
        try pauseControl.withTransition { () throws(VMMError) in
            try VirtioMmioSlot.withAllLocked(virtioSlots[...]) { () throws(VMMError) in try saveLocked(to: path) }
        }
    }

    /// The record name of virtio slot `index` in a snapshot file.
    static func virtioRecordName(_ index: Int) -> String { "virtio\(index)" }
    static let cpuidRecordName = "cpuid"

    /// Every vCPU's CPUID entries as KVM takes them, one after another.
    static func cpuidRecord(_ cpuid: [[CPUIDEntry]]) -> [UInt8] {
        cpuid.flatMap { entries in entries.withUnsafeBytes { Array($0) } }
    }

    private func saveLocked(to path: String) throws(VMMError) {
        guard !isStopping else { throw .invalidState(operation: "snapshot", state: "stopped") }
        guard pauseControl.isPaused || !hasStarted else { throw .invalidState(operation: "snapshot", state: "running") }
        var devices = ["serial": serial.savedRegisters(), Self.cpuidRecordName: Self.cpuidRecord(cpuid)]
        for (index, slot) in virtioSlots.enumerated() {
            do throws(TransportStateError) {
                devices[Self.virtioRecordName(index)] = try slot.savedRecordLocked()
            } catch {
                throw .snapshot("virtio device \(index): \(error)")
            }
        }
        let msrIndices = try wrap { () throws(KVMError) in try vm.kvm.msrIndexList() }
        let vmState = try wrap { () throws(KVMError) in try hasIrqchip ? vm.captureState() : nil }
        let states = try wrap { () throws(KVMError) in
            var states: [VcpuState] = []
            for vcpu in vcpus { states.append(try vcpu.captureState(msrIndices: msrIndices)) }
            return states
        }
        let ranges = memory.regions.indices.map { index in
            (guestAddress: memory.regions[index].start.rawValue,
             bytes: UnsafeRawBufferPointer(start: memory.hostAddress(ofRegion: index), count: Int(memory.regions[index].size)))
        }
        do {
            try SnapshotFile.write(to: path, vm: vmState, vcpus: states, devices: devices, memory: ranges)
        } catch {
            throw .snapshot("\(error)")
        }
    }

    /// A snapshot restores only into a VM configured like the one saved.
    static func check(_ snapshot: SnapshotFile, against config: VMConfig, regions: [(start: UInt64, size: UInt64)]) throws(VMMError) {
        let saved = snapshot.devices.keys.filter { $0.hasPrefix("virtio") }.count
        guard saved == config.virtioDevices.count,
            config.virtioDevices.indices.allSatisfy({ snapshot.devices[virtioRecordName($0)] != nil })
        else {
            throw .snapshot("it has \(saved) virtio devices, the configuration \(config.virtioDevices.count)")
        }
        guard snapshot.regions.map({ [$0.guestAddress, $0.size] }) == regions.map({ [$0.start, $0.size] }) else {
            throw .snapshot("its guest RAM is not the layout of \(config.memorySize >> 20) MiB")
        }
        guard snapshot.vcpus.count == config.vcpus else {
            throw .snapshot("it has \(snapshot.vcpus.count) vCPUs, the configuration \(config.vcpus)")
        }
        guard (snapshot.vm != nil) == config.irqchip else {
            throw .snapshot(config.irqchip ? "it was saved without the in-kernel irqchip" : "it was saved with the in-kernel irqchip")
        }
    }
}
