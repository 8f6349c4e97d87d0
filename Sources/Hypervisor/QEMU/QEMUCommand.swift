/// The qemu-system-x86_64 command line for one VM: a microvm without ACPI, guest RAM in a shared
/// memfd (vhost-user needs it), serial console on stdio, vsock through vhost-user to our backend.
struct QEMUCommand: Equatable, Sendable {
    var binary: String
    var kernelPath: String
    var initrdPath: String?
    var cmdline: String
    var vcpus: Int
    var memoryMiB: Int
    var accelerator: QEMUAccelerator
    var vhostVsockSocket: String
    var guestCID: UInt32
    var qmpSocket: String
    var debug: Bool

    /// Kernel arguments every QEMU guest gets: serial console, reboot by triple fault (QEMU exits
    /// with -no-reboot), no panic wait, and a fixed TSC rate (TSC calibration can hang under TCG).
    static let baseCmdline = ["console=ttyS0", "reboot=t", "panic=-1", "tsc_early_khz=2000"]

    init(config: HypervisorConfig, accelerator: QEMUAccelerator, vhostVsockSocket: String, qmpSocket: String) {
        binary = config.qemuBinary
        kernelPath = config.kernelPath
        initrdPath = config.initrdPath
        var args = Self.baseCmdline
        if !config.debug { args.append("quiet") }
        cmdline = (args + config.cmdlineExtras).joined(separator: " ")
        vcpus = config.vcpus
        memoryMiB = config.memoryMiB
        self.accelerator = accelerator
        self.vhostVsockSocket = vhostVsockSocket
        guestCID = config.guestCID
        self.qmpSocket = qmpSocket
        debug = config.debug
    }

    var arguments: [String] {
        var a = [
            binary,
            "-M", "microvm,acpi=off,memory-backend=mem",
            "-object", "memory-backend-memfd,id=mem,size=\(memoryMiB)M,share=on",
            "-m", "\(memoryMiB)M",
            "-smp", "\(vcpus)",
            "-accel", accelerator.rawValue,
            "-cpu", accelerator == .kvm ? "host,-arch-capabilities" : "max",
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-serial", "stdio",
            "-qmp", "unix:\(qmpSocket),server=on,wait=off",
            "-chardev", "socket,id=vsock0,path=\(vhostVsockSocket)",
            "-device", "vhost-user-vsock-device,chardev=vsock0,guest-cid=\(guestCID)",
            "-kernel", kernelPath,
            "-append", cmdline,
        ]
        if let initrdPath { a += ["-initrd", initrdPath] }
        if debug { a += ["-d", "guest_errors"] }
        return a
    }
}
