import Logging

/// Makes the sandbox's hypervisor for `config.backend`, resolving `auto` through the cached
/// host probe (`BackendProbe`).
public enum HypervisorFactory {
    public static func make(_ config: HypervisorConfig, logger: Logger = Logger(label: "kata-swift.hypervisor")) throws(HypervisorError)
        -> any Hypervisor
    {
        switch try BackendProbe.resolve(config.backend, qemuBinary: config.qemuBinary) {
        case .qemu, .auto:
            // QEMU with KVM only where our probe found that KVM runs a guest userspace.
            let kvm = config.backend != .qemu && BackendProbe.verdict(qemuBinary: config.qemuBinary).kvmUserspace
            return QEMUHypervisor(config: config, accelerator: kvm ? .kvm : .tcg, logger: logger)
        case .kvm:
            // The in-process VMM has no vsock device yet, so it cannot serve the agent: until the VMM
            // gains virtio-mmio vsock (the same VsockDevice), KVM hosts use QEMU with -accel kvm.
            return QEMUHypervisor(config: config, accelerator: .kvm, logger: logger)
        }
    }
}
