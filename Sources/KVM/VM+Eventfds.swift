import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// irqfd and ioeventfd: interrupts and doorbells that bypass userspace.
///
/// An irqfd makes every write to an eventfd pulse a GSI on the in-kernel irqchip (so a device
/// thread raises interrupts without a vCPU); an ioeventfd makes a guest store to an MMIO address
/// (optionally only with one value) signal an eventfd instead of exiting to userspace.
extension VM {
    /// KVM_IRQFD: writes to `eventFD` raise `gsi` (needs the in-kernel irqchip).
    public func registerIrqfd(_ eventFD: FileDescriptor, gsi: UInt32) throws(KVMError) {
        try irqfd(eventFD, gsi: gsi, flags: 0)
    }

    /// KVM_IRQFD with DEASSIGN: `eventFD` no longer raises `gsi`.
    public func unregisterIrqfd(_ eventFD: FileDescriptor, gsi: UInt32) throws(KVMError) {
        try irqfd(eventFD, gsi: gsi, flags: KS_KVM_IRQFD_FLAG_DEASSIGN)
    }

    private func irqfd(_ eventFD: FileDescriptor, gsi: UInt32, flags: UInt32) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD.rawValue)
        request.gsi = gsi
        request.flags = flags
        guard ioctl(fd.rawValue, KS_KVM_IRQFD, &request) == 0 else { throw .irqfd(gsi: gsi, .current) }
    }

    /// KVM_IOEVENTFD on the MMIO bus: a guest store of `length` bytes at `address` signals
    /// `eventFD` (only when the stored value equals `datamatch`, if given) without a VM exit.
    public func registerIoeventfd(
        _ eventFD: FileDescriptor, address: UInt64, length: UInt32, datamatch: UInt64?
    ) throws(KVMError) {
        try ioeventfd(eventFD, address: address, length: length, datamatch: datamatch, deassign: false)
    }

    /// Removes a registration made by `registerIoeventfd` (same arguments).
    public func unregisterIoeventfd(
        _ eventFD: FileDescriptor, address: UInt64, length: UInt32, datamatch: UInt64?
    ) throws(KVMError) {
        try ioeventfd(eventFD, address: address, length: length, datamatch: datamatch, deassign: true)
    }

    private func ioeventfd(
        _ eventFD: FileDescriptor, address: UInt64, length: UInt32, datamatch: UInt64?, deassign: Bool
    ) throws(KVMError) {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = eventFD.rawValue
        request.datamatch = datamatch ?? 0
        request.flags = (datamatch == nil ? 0 : KS_KVM_IOEVENTFD_FLAG_DATAMATCH)
            | (deassign ? KS_KVM_IOEVENTFD_FLAG_DEASSIGN : 0)
        guard ioctl(fd.rawValue, KS_KVM_IOEVENTFD, &request) == 0 else { throw .ioeventfd(address: address, .current) }
    }
}
