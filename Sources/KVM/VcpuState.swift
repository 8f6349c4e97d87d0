// Snapshot and restore of one vCPU: everything KVM keeps for it, read while the vCPU is out of
// KVM_RUN and written back into a fresh vCPU of a fresh VM (docs/snapshots.md).
import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// One model-specific register and its value.
public struct MSRValue: Equatable, Sendable {
    public var index: UInt32
    public var value: UInt64

    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}

/// What KVM holds for one vCPU. The caller gives the restored vCPU the same CPUID first: KVM
/// checks the extended state and MSRs against it.
public struct VcpuState: Sendable {
    public var mpState: kvm_mp_state
    public var registers: kvm_regs
    public var specialRegisters: kvm_sregs
    /// struct kvm_xsave's KS_KVM_XSAVE_SIZE bytes: x87, SSE, AVX and the other extended state.
    public var extendedState: [UInt8]
    public var controlRegisters: kvm_xcrs
    public var debugRegisters: kvm_debugregs
    /// Nil where the VM has no in-kernel irqchip (no local APIC in KVM).
    public var localAPIC: kvm_lapic_state?
    public var msrs: [MSRValue]
    public var events: kvm_vcpu_events

    public init(
        mpState: kvm_mp_state, registers: kvm_regs, specialRegisters: kvm_sregs, extendedState: [UInt8], controlRegisters: kvm_xcrs,
        debugRegisters: kvm_debugregs, localAPIC: kvm_lapic_state?, msrs: [MSRValue], events: kvm_vcpu_events
    ) {
        self.mpState = mpState
        self.registers = registers
        self.specialRegisters = specialRegisters
        self.extendedState = extendedState
        self.controlRegisters = controlRegisters
        self.debugRegisters = debugRegisters
        self.localAPIC = localAPIC
        self.msrs = msrs
        self.events = events
    }
}

extension Vcpu {
    /// Reads the vCPU's state. The vCPU must not be running (its thread is out of KVM_RUN).
    /// MP state comes first: reading it makes KVM settle pending APIC events into the state
    /// read after it. An MSR of `msrIndices` this vCPU cannot read is left out.
    public func captureState(msrIndices: [UInt32]) throws(KVMError) -> VcpuState {
        var mpState = kvm_mp_state()
        try stateIoctl(fd, KS_KVM_GET_MP_STATE, "KVM_GET_MP_STATE", &mpState)
        let registers = try registers()
        let specialRegisters = try specialRegisters()
        var extendedState = [UInt8](repeating: 0, count: Int(KS_KVM_XSAVE_SIZE))
        let rc = ks_kvm_get_xsave(fd.rawValue, &extendedState)
        guard rc == 0 else { throw .state("KVM_GET_XSAVE", Errno(rawValue: -rc)) }
        var controlRegisters = kvm_xcrs()
        try stateIoctl(fd, KS_KVM_GET_XCRS, "KVM_GET_XCRS", &controlRegisters)
        var debugRegisters = kvm_debugregs()
        try stateIoctl(fd, KS_KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &debugRegisters)
        var lapic = kvm_lapic_state()
        var localAPIC: kvm_lapic_state?
        if ioctl(fd.rawValue, KS_KVM_GET_LAPIC, &lapic) == 0 {
            localAPIC = lapic
        } else if Errno.current != .invalidArgument {  // EINVAL: no in-kernel local APIC
            throw .getLAPIC(.current)
        }
        let msrs = try readMSRs(msrIndices)
        var events = kvm_vcpu_events()
        guard ioctl(fd.rawValue, KS_KVM_GET_VCPU_EVENTS, &events) == 0 else { throw .vcpuEvents(.current) }
        return VcpuState(
            mpState: mpState, registers: registers, specialRegisters: specialRegisters, extendedState: extendedState,
            controlRegisters: controlRegisters, debugRegisters: debugRegisters, localAPIC: localAPIC, msrs: msrs,
            events: events)
    }

    /// Writes `state` into this vCPU (fresh, with the CPUID of the one captured), in the order
    /// KVM needs: special registers (modes) before the extended state, the local APIC before
    /// the MSRs that refer to it, pending events last.
    public func restoreState(_ state: VcpuState) throws(KVMError) {
        guard state.extendedState.count == Int(KS_KVM_XSAVE_SIZE) else {
            throw .state("KVM_SET_XSAVE", .invalidArgument)
        }
        var mpState = state.mpState
        try stateIoctl(fd, KS_KVM_SET_MP_STATE, "KVM_SET_MP_STATE", &mpState)
        try setRegisters(state.registers)
        try setSpecialRegisters(state.specialRegisters)
        let rc = ks_kvm_set_xsave(fd.rawValue, state.extendedState)
        guard rc == 0 else { throw .state("KVM_SET_XSAVE", Errno(rawValue: -rc)) }
        var controlRegisters = state.controlRegisters
        try stateIoctl(fd, KS_KVM_SET_XCRS, "KVM_SET_XCRS", &controlRegisters)
        var debugRegisters = state.debugRegisters
        try stateIoctl(fd, KS_KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &debugRegisters)
        if var localAPIC = state.localAPIC {
            guard ioctl(fd.rawValue, KS_KVM_SET_LAPIC, &localAPIC) == 0 else { throw .setLAPIC(.current) }
        }
        try writeMSRs(state.msrs)
        var events = state.events
        guard ioctl(fd.rawValue, KS_KVM_SET_VCPU_EVENTS, &events) == 0 else { throw .vcpuEvents(.current) }
    }

    /// KVM_SET_MSRS of `msrs`. KVM stops at the first it refuses; that one is let go only if this
    /// vCPU already holds the value (an MSR of a feature this VM lacks, at its reset value, as
    /// the async page fault MSRs without an in-kernel local APIC), and the rest are set.
    private func writeMSRs(_ msrs: [MSRValue]) throws(KVMError) {
        var rest = msrs[...]
        while !rest.isEmpty {
            let batch = Array(rest)
            let n = ks_kvm_set_msrs(fd.rawValue, batch.map(\.index), batch.map(\.value), Int32(batch.count))
            guard n >= 0 else { throw .setMSRs(Errno(rawValue: -n)) }
            guard Int(n) < batch.count else { return }
            let refused = batch[Int(n)]
            guard try readMSRs([refused.index]).first?.value == refused.value else {
                throw .msrRefused(index: refused.index, value: refused.value)
            }
            rest = rest.dropFirst(Int(n) + 1)
        }
    }

    /// KVM_GET_MSRS over `indices`; KVM stops at the first MSR it cannot read, which is skipped.
    private func readMSRs(_ indices: [UInt32]) throws(KVMError) -> [MSRValue] {
        var result: [MSRValue] = []
        var rest = indices[...]
        while !rest.isEmpty {
            let batch = Array(rest)
            var values = [UInt64](repeating: 0, count: batch.count)
            let n = ks_kvm_get_msrs(fd.rawValue, batch, &values, Int32(batch.count))
            guard n >= 0 else { throw .state("KVM_GET_MSRS", Errno(rawValue: -n)) }
            for i in 0..<Int(n) { result.append(MSRValue(index: batch[i], value: values[i])) }
            rest = rest.dropFirst(Int(n) + 1)  // the one at n could not be read
        }
        return result
    }

}

/// One state ioctl (a plain C struct in or out), its failure named.
/// `T` is an imported kvm_* struct (plain data; some hold unions, which Swift does not call
/// BitwiseCopyable).
func stateIoctl<T>(_ fd: FileDescriptor, _ request: UInt, _ name: String, _ value: inout T) throws(KVMError) {
    let rc = withUnsafeMutableBytes(of: &value) { ioctl(fd.rawValue, request, $0.baseAddress!) }
    guard rc == 0 else { throw .state(name, .current) }
}
