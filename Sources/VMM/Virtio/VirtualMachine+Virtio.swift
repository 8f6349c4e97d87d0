import Boot
import KVM
import SystemSupport

extension VirtualMachine {
    /// Builds one slot per device: its window on the MMIO bus, an irqfd on its GSI and an
    /// ioeventfd per queue on QueueNotify (datamatch = queue index).
    static func makeVirtioSlots(
        _ config: VMConfig, vm: VM, memory: MmapGuestMemory, mmio: Bus
    ) throws(VMMError) -> [VirtioMmioSlot] {
        guard !config.virtioDevices.isEmpty else { return [] }
        guard config.irqchip else { throw .virtioNeedsIrqchip }
        guard config.virtioDevices.count <= Layout.maxVirtioDevices else {
            throw .tooManyVirtioDevices(config.virtioDevices.count)
        }
        var slots: [VirtioMmioSlot] = []
        for (index, spec) in config.virtioDevices.enumerated() {
            let base = Layout.virtioMMIOStart + UInt64(index) * Layout.virtioMMIOSize
            let irq = Layout.firstVirtioIRQ + UInt32(index)
            let slot: VirtioMmioSlot
            let interrupt: EventFD
            do {
                interrupt = try EventFD()
                slot = try VirtioMmioSlot(
                    spec: spec, base: base, irq: irq, memory: memory, interruptLine: EventFDInterruptLine(interrupt))
            } catch {
                throw .virtioSetup(device: index, error)
            }
            try wrap { () throws(KVMError) in
                try vm.registerIrqfd(interrupt.fd, gsi: irq)
                for (queue, event) in slot.queueEvents.enumerated() {
                    try vm.registerIoeventfd(event.fd, address: slot.queueNotifyAddress, length: 4, datamatch: UInt64(queue))
                }
            }
            do {
                try mmio.register(slot, base: base, length: Layout.virtioMMIOSize)
            } catch {
                throw .bus(error)
            }
            slots.append(slot)
        }
        return slots
    }
}
