import VMM
import Logging

/// Makes the sandbox's hypervisor for `config.backend`, resolving `auto` through the cached
/// host probe (`BackendProbe`).
public enum HypervisorFactory {
    /// How the kvm backend serves `HypervisorConfig.sharedDirectories`: our virtio-fs device model
    /// (the one QEMU gets over vhost-user) on a virtio-mmio slot.
    public static let sharedDirectoryDevice: KVMHypervisor.SharedDirectoryDevice = { (share, traffic) throws(HypervisorError) in
        VirtioDeviceSpec(device: try makeVirtioFsDevice(share, traffic: traffic, logger: Logger(label: "kata-swift.virtiofs")))
    }

    public static func make(_ config: HypervisorConfig, logger: Logger = Logger(label: "kata-swift.hypervisor")) throws(HypervisorError)
        -> any Hypervisor
    {
        switch try BackendProbe.resolve(config.backend, qemuBinary: config.qemuBinary) {
        case .qemu, .auto:
            // QEMU with KVM only where our probe found that KVM runs a guest userspace.
            let kvm = BackendProbe.verdict(qemuBinary: config.qemuBinary).kvmUserspace
            return QEMUHypervisor(config: config, accelerator: kvm ? .kvm : .tcg, logger: logger)
        case .kvm:
            // `auto` lands here only where the probe saw KVM run a guest userspace.
            return KVMHypervisor(config: config, sharedDirectoryDevice: sharedDirectoryDevice, logger: logger)
        }
    }
}

extension Hypervisor {
    /// What runs the guest, for logs and the demo: "kvm (in-process VMM)", "qemu (tcg)".
    public var backendSummary: String {
        if let qemu = self as? QEMUHypervisor { return "qemu (\(qemu.accelerator.rawValue))" }
        return kind == .kvm ? "kvm (in-process VMM)" : kind.rawValue
    }
}
