import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// One virtual CPU: its fd and its shared kvm_run page.
///
/// `run()` is called from the vCPU's own thread only. `requestImmediateExit()` may be called from
/// any thread (it writes one byte of the shared page that KVM reads at entry).
public final class Vcpu: @unchecked Sendable {
    // SAFETY: `run` points at a mapping of `mmapSize` bytes created in init and unmapped in deinit;
    // the kernel guarantees it holds a struct kvm_run, and io.data_offset/io.size*io.count stay
    // inside the mapping (checked again before use). Only the vCPU thread touches it, except the
    // single byte immediate_exit.
    private let run: UnsafeMutablePointer<kvm_run>
    private let mmapSize: Int
    public let id: Int
    public let fd: FileDescriptor

    init(id: Int, fd: FileDescriptor, mmapSize: Int) throws(KVMError) {
        let mapping = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        guard let mapping, mapping != MAP_FAILED else { throw .mmapRun(.current) }
        self.run = mapping.bindMemory(to: kvm_run.self, capacity: 1)
        self.mmapSize = mmapSize
        self.id = id
        self.fd = fd
    }

    deinit { munmap(run, mmapSize) }

    // MARK: registers

    public func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        guard ioctl(fd.rawValue, KS_KVM_GET_REGS, &regs) == 0 else { throw .getRegisters(.current) }
        return regs
    }

    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var copy = regs
        guard ioctl(fd.rawValue, KS_KVM_SET_REGS, &copy) == 0 else { throw .setRegisters(.current) }
    }

    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var sregs = kvm_sregs()
        guard ioctl(fd.rawValue, KS_KVM_GET_SREGS, &sregs) == 0 else { throw .getSpecialRegisters(.current) }
        return sregs
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var copy = sregs
        guard ioctl(fd.rawValue, KS_KVM_SET_SREGS, &copy) == 0 else { throw .setSpecialRegisters(.current) }
    }

    /// Sets the x87 control word and MXCSR to their reset values, as Linux expects.
    public func setDefaultFPU() throws(KVMError) {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37f
        fpu.mxcsr = 0x1f80
        guard ioctl(fd.rawValue, KS_KVM_SET_FPU, &fpu) == 0 else { throw .setFPU(.current) }
    }

    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        let rc = ks_kvm_set_cpuid(fd.rawValue, entries, Int32(entries.count))
        guard rc == 0 else { throw .setCPUID(Errno(rawValue: -rc)) }
    }

    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        let indices = msrs.map(\.index)
        let values = msrs.map(\.value)
        let rc = ks_kvm_set_msrs(fd.rawValue, indices, values, Int32(msrs.count))
        guard rc >= 0 else { throw .setMSRs(Errno(rawValue: -rc)) }
        guard Int(rc) == msrs.count else { throw .setMSRsPartial(set: Int(rc), of: msrs.count) }
    }

    /// Programs LINT0 as ExtINT and LINT1 as NMI in the local APIC, as a BIOS would.
    public func configureLocalInterrupts() throws(KVMError) {
        var lapic = kvm_lapic_state()
        guard ioctl(fd.rawValue, KS_KVM_GET_LAPIC, &lapic) == 0 else { throw .getLAPIC(.current) }
        withUnsafeMutableBytes(of: &lapic.regs) { regs in
            func update(_ offset: Int, mode: UInt32) {
                let value = regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                regs.storeBytes(of: (value & ~0x700) | (mode << 8), toByteOffset: offset, as: UInt32.self)
            }
            update(0x350, mode: 7)  // LVT LINT0: ExtINT
            update(0x360, mode: 4)  // LVT LINT1: NMI
        }
        guard ioctl(fd.rawValue, KS_KVM_SET_LAPIC, &lapic) == 0 else { throw .setLAPIC(.current) }
    }

    /// Advances RIP by `instructionLength` and injects exception `vector` (no error code), as if
    /// the instruction had raised it: used to deliver INT3 that KVM's emulator cannot execute.
    public func injectException(vector: UInt8, instructionLength: UInt64) throws(KVMError) {
        var regs = try registers()
        regs.rip &+= instructionLength
        try setRegisters(regs)
        var events = kvm_vcpu_events()
        guard ioctl(fd.rawValue, KS_KVM_GET_VCPU_EVENTS, &events) == 0 else { throw .vcpuEvents(.current) }
        events.exception.injected = 1
        events.exception.nr = vector
        events.exception.has_error_code = 0
        events.exception.error_code = 0
        guard ioctl(fd.rawValue, KS_KVM_SET_VCPU_EVENTS, &events) == 0 else { throw .vcpuEvents(.current) }
    }

    // MARK: running

    /// Runs the vCPU until the next exit to userspace.
    public func runOnce() throws(KVMError) -> VcpuExit {
        if ioctl(fd.rawValue, KS_KVM_RUN) != 0 {
            let error = Errno.current
            if error == .interrupted || error == .wouldBlock { return .interrupted }
            throw .run(error)
        }
        return decodeExit()
    }

    private func decodeExit() -> VcpuExit {
        let r = run.pointee
        switch r.exit_reason {
        case KvmExitReason.io:
            let size = Int(r.io.size)
            let count = Int(r.io.count)
            let port = r.io.port
            if r.io.direction == KvmExitReason.ioDirectionOut {
                guard let data = ioData(offset: Int(r.io.data_offset), length: size * count) else {
                    return .unknown(reason: r.exit_reason)
                }
                return .ioOut(port: port, size: size, data: data)
            }
            return .ioIn(port: port, size: size, count: count)
        case KvmExitReason.mmio:
            let length = min(Int(r.mmio.len), 8)
            if r.mmio.is_write != 0 {
                let data = withUnsafeBytes(of: r.mmio.data) { Array($0.prefix(length)) }
                return .mmioWrite(address: r.mmio.phys_addr, data: data)
            }
            return .mmioRead(address: r.mmio.phys_addr, size: length)
        case KvmExitReason.hlt: return .hlt
        case KvmExitReason.shutdown: return .shutdown
        case KvmExitReason.systemEvent: return .systemEvent(type: r.system_event.type)
        case KvmExitReason.failEntry: return .failEntry(reason: r.fail_entry.hardware_entry_failure_reason)
        case KvmExitReason.internalError: return .internalError(suberror: r.internal.suberror, instruction: failedInstruction())
        case KvmExitReason.intr: return .interrupted
        default: return .unknown(reason: r.exit_reason)
        }
    }

    /// The instruction bytes of an emulation failure (struct emulation_failure: flags in data[0],
    /// bit 0 = bytes valid; then insn_size and 15 bytes starting at data[1]).
    private func failedInstruction() -> [UInt8] {
        let r = run.pointee
        guard r.internal.suberror == 1, r.internal.ndata >= 3 else { return [] }
        return withUnsafeBytes(of: run.pointee.internal.data) { raw -> [UInt8] in
            let flags = raw.loadUnaligned(as: UInt64.self)
            guard flags & 1 != 0 else { return [] }
            let size = min(Int(raw[8]), 15)
            return Array(raw[9..<9 + size])
        }
    }

    private func ioData(offset: Int, length: Int) -> [UInt8]? {
        guard offset >= 0, length >= 0, offset <= mmapSize, length <= mmapSize - offset else { return nil }
        let base = UnsafeRawPointer(run) + offset
        return Array(UnsafeRawBufferPointer(start: base, count: length))
    }

    /// Supplies the data for the pending `ioIn` or `mmioRead` exit; must be called before the next run.
    /// Extra bytes are ignored, missing bytes read as 0xff (an absent device).
    public func completeRead(_ bytes: [UInt8]) {
        let r = run.pointee
        switch r.exit_reason {
        case KvmExitReason.io where r.io.direction != KvmExitReason.ioDirectionOut:
            let length = Int(r.io.size) * Int(r.io.count)
            let offset = Int(r.io.data_offset)
            guard offset >= 0, offset <= mmapSize, length <= mmapSize - offset else { return }
            let dst = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(run) + offset, count: length)
            for i in 0..<length { dst[i] = i < bytes.count ? bytes[i] : 0xff }
        case KvmExitReason.mmio where r.mmio.is_write == 0:
            let length = min(Int(r.mmio.len), 8)
            withUnsafeMutableBytes(of: &run.pointee.mmio.data) { dst in
                for i in 0..<length { dst[i] = i < bytes.count ? bytes[i] : 0xff }
            }
        default:
            return
        }
    }

    /// Makes the current or next KVM_RUN return at once (pair with a signal to the vCPU thread).
    public func requestImmediateExit(_ on: Bool = true) {
        // SAFETY: a single aligned byte in the shared page; KVM reads it at VM entry.
        run.pointee.immediate_exit = on ? 1 : 0
    }
}
