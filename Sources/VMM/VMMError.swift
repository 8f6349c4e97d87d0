import Boot
import KVM
import SystemSupport

/// Errors of building or running a VM; each case names the step.
public enum VMMError: Error, Equatable, Sendable, CustomStringConvertible {
    case kvm(KVMError)
    case boot(BootError)
    case allocateMemory(size: UInt64, Errno)
    case bus(BusError)
    case startThread(vcpu: Int, Errno)
    case invalidVcpuCount(requested: Int, maximum: Int)
    case alreadyStarted
    case probeFailed(String)
    /// virtio-mmio devices need the in-kernel irqchip (irqfd).
    case virtioNeedsIrqchip
    /// More virtio devices than free interrupt lines (GSI 5...23).
    case tooManyVirtioDevices(Int)
    /// Setting up a virtio slot's eventfds (or its device thread) failed.
    case virtioSetup(device: Int, Errno)
    /// pause/resume in a state that does not allow it.
    case invalidState(operation: String, state: String)
    /// Saving or restoring a snapshot (docs/snapshots.md).
    case snapshot(String)

    public var description: String {
        switch self {
        case .kvm(let e): "\(e)"
        case .boot(let e): "\(e)"
        case .allocateMemory(let size, let e): "cannot allocate \(size >> 20) MiB of guest memory: \(e)"
        case .bus(let e): "\(e)"
        case .startThread(let id, let e): "cannot start the thread of vCPU \(id): \(e)"
        case .invalidVcpuCount(let n, let m): "\(n) vCPUs requested; this host allows 1 to \(m)"
        case .alreadyStarted: "the VM was already started"
        case .probeFailed(let why): "host probe failed: \(why)"
        case .virtioNeedsIrqchip: "virtio-mmio devices need the in-kernel irqchip"
        case .tooManyVirtioDevices(let n): "\(n) virtio devices; at most \(Layout.maxVirtioDevices) fit the IOAPIC"
        case .virtioSetup(let i, let e): "virtio device \(i): eventfd or thread setup: \(e)"
        case .invalidState(let op, let state): "\(op): not valid while the VM is \(state)"
        case .snapshot(let why): "snapshot: \(why)"
        }
    }
}
