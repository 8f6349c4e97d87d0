// Snapshot and restore of a VM's in-kernel devices: the interrupt controllers, the PIT and the
// kvmclock base (docs/snapshots.md). Guest memory and the vCPUs are saved apart.
import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The in-kernel state of a VM made with `createIRQChip` and `createPIT`.
public struct VMState: Sendable {
    /// KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE and KVM_IRQCHIP_IOAPIC, in that order.
    public var irqChips: [kvm_irqchip]
    public var pit: kvm_pit_state2
    public var clock: kvm_clock_data

    public init(irqChips: [kvm_irqchip], pit: kvm_pit_state2, clock: kvm_clock_data) {
        self.irqChips = irqChips
        self.pit = pit
        self.clock = clock
    }

    static let chipIDs: [UInt32] = [UInt32(KVM_IRQCHIP_PIC_MASTER), UInt32(KVM_IRQCHIP_PIC_SLAVE), UInt32(KVM_IRQCHIP_IOAPIC)]
}

extension VM {
    /// Reads the interrupt controllers, the PIT and the clock. Every vCPU must be out of KVM_RUN.
    public func captureState() throws(KVMError) -> VMState {
        var chips: [kvm_irqchip] = []
        for id in VMState.chipIDs {
            var chip = kvm_irqchip()
            chip.chip_id = id
            try stateIoctl(fd, KS_KVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
            chips.append(chip)
        }
        var pit = kvm_pit_state2()
        try stateIoctl(fd, KS_KVM_GET_PIT2, "KVM_GET_PIT2", &pit)
        var clock = kvm_clock_data()
        try stateIoctl(fd, KS_KVM_GET_CLOCK, "KVM_GET_CLOCK", &clock)
        return VMState(irqChips: chips, pit: pit, clock: clock)
    }

    /// Writes `state` into this VM (fresh, with its irqchip and PIT created, before its vCPUs
    /// run). The guest's clock resumes at the captured time: a restored guest does not see
    /// the time it spent in the snapshot.
    public func restoreState(_ state: VMState) throws(KVMError) {
        guard state.irqChips.map(\.chip_id) == VMState.chipIDs else { throw .state("KVM_SET_IRQCHIP", .invalidArgument) }
        for var chip in state.irqChips { try stateIoctl(fd, KS_KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", &chip) }
        var pit = state.pit
        try stateIoctl(fd, KS_KVM_SET_PIT2, "KVM_SET_PIT2", &pit)
        var clock = kvm_clock_data()
        clock.clock = state.clock.clock  // flags describe the host that read it; none are set back
        try stateIoctl(fd, KS_KVM_SET_CLOCK, "KVM_SET_CLOCK", &clock)
    }

}
