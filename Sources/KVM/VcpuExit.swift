/// Why KVM_RUN returned: the kvm_run union turned into cases, with the data copied out.
///
/// Reads (`ioIn`, `mmioRead`) are answered with `Vcpu.completeRead(_:)` before the next run.
public enum VcpuExit: Equatable, Sendable {
    /// `in` from `port`: `count` accesses (rep ins) of `size` bytes each.
    case ioIn(port: UInt16, size: Int, count: Int)
    /// `out` to `port`: `data` holds `data.count / size` accesses of `size` bytes each.
    case ioOut(port: UInt16, size: Int, data: [UInt8])
    /// A load of `size` bytes from an address with no RAM behind it.
    case mmioRead(address: UInt64, size: Int)
    /// A store to an address with no RAM behind it.
    case mmioWrite(address: UInt64, data: [UInt8])
    /// HLT (only reaches userspace without the in-kernel irqchip).
    case hlt
    /// Triple fault or similar: the CPU reset itself.
    case shutdown
    /// KVM_EXIT_SYSTEM_EVENT: `type` is KVM_SYSTEM_EVENT_SHUTDOWN (1), _RESET (2), _CRASH (3).
    case systemEvent(type: UInt32)
    /// VM entry failed (bad register state); hardware reason code.
    case failEntry(reason: UInt64)
    /// KVM could not handle something. Suberror 1 is an emulation failure; KVM then reports the
    /// failing instruction's bytes (up to 15) when it has them, else `instruction` is empty.
    case internalError(suberror: UInt32, instruction: [UInt8])
    /// KVM_RUN returned EINTR or KVM_EXIT_INTR: a signal or `immediate_exit` (a stop request).
    case interrupted
    /// Any exit reason we do not model.
    case unknown(reason: UInt32)
}

/// KVM exit reason codes (linux/kvm.h), kept here so the decoding is explicit.
enum KvmExitReason {
    static let io: UInt32 = 2
    static let hlt: UInt32 = 5
    static let mmio: UInt32 = 6
    static let shutdown: UInt32 = 8
    static let failEntry: UInt32 = 9
    static let intr: UInt32 = 10
    static let internalError: UInt32 = 17
    static let systemEvent: UInt32 = 24
    static let ioDirectionOut: UInt8 = 1
}
