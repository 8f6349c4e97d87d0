import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A KVM virtual machine: memory slots, interrupt controller, vCPUs.
public final class VM: Sendable {
    public let kvm: Kvm
    public let fd: FileDescriptor

    init(kvm: Kvm, fd: FileDescriptor) {
        self.kvm = kvm
        self.fd = fd
    }

    /// Maps `size` bytes of host memory at `hostAddress` as guest RAM at `guestAddress`.
    ///
    /// The caller keeps the host mapping alive for as long as the VM exists.
    public func setUserMemoryRegion(
        slot: UInt32, guestAddress: UInt64, size: UInt64, hostAddress: UnsafeMutableRawPointer, readOnly: Bool = false
    ) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0, guest_phys_addr: guestAddress,
            memory_size: size, userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        guard ioctl(fd.rawValue, KS_KVM_SET_USER_MEMORY_REGION, &region) == 0 else {
            throw .setUserMemoryRegion(.current)
        }
    }

    /// Intel VMX needs three pages for the real-mode TSS somewhere outside guest RAM.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        guard ioctl(fd.rawValue, KS_KVM_SET_TSS_ADDR, Int32(truncatingIfNeeded: address)) == 0 else {
            throw .setTSSAddress(.current)
        }
    }

    /// The one-page identity map used by VMX for real mode without unrestricted guest.
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var value = address
        guard ioctl(fd.rawValue, KS_KVM_SET_IDENTITY_MAP_ADDR, &value) == 0 else {
            throw .setIdentityMapAddress(.current)
        }
    }

    /// In-kernel PIC + IOAPIC + local APICs.
    public func createIRQChip() throws(KVMError) {
        guard ioctl(fd.rawValue, KS_KVM_CREATE_IRQCHIP) == 0 else { throw .createIRQChip(.current) }
    }

    /// In-kernel i8254 PIT (needs the irqchip first).
    public func createPIT() throws(KVMError) {
        var config = kvm_pit_config()
        config.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        guard ioctl(fd.rawValue, KS_KVM_CREATE_PIT2, &config) == 0 else { throw .createPIT(.current) }
    }

    /// Sets a legacy interrupt line (GSI) high or low on the in-kernel irqchip.
    public func setIRQLine(_ irq: UInt32, high: Bool) throws(KVMError) {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = high ? 1 : 0
        guard ioctl(fd.rawValue, KS_KVM_IRQ_LINE, &level) == 0 else { throw .irqLine(.current) }
    }

    /// Creates vCPU `id` and maps its kvm_run page.
    public func createVcpu(id: Int) throws(KVMError) -> Vcpu {
        let raw = ioctl(fd.rawValue, KS_KVM_CREATE_VCPU, Int32(id))
        guard raw >= 0 else { throw .createVcpu(id: id, .current) }
        let vcpuFD = FileDescriptor(owning: raw)
        return try Vcpu(id: id, fd: vcpuFD, mmapSize: try kvm.vcpuMmapSize())
    }
}
