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
            let kvm = BackendProbe.verdict(qemuBinary: config.qemuBinary).kvmUserspace
            return QEMUHypervisor(config: config, accelerator: kvm ? .kvm : .tcg, logger: logger)
        case .kvm:
            // `auto` lands here only where the probe saw KVM run a guest userspace.
            return KVMHypervisor(config: config, logger: logger)
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
