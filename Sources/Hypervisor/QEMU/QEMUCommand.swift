#if canImport(Glibc)
import Glibc
#endif

/// The qemu-system-x86_64 command line for one VM: a microvm without ACPI, guest RAM in a shared
/// memfd (vhost-user needs it), serial console on stdio, vsock through vhost-user to our backend.
/// QEMU 7.2's vhost-user-vsock-device has no guest-cid property: the guest reads its CID from
/// our backend's config space (GET_CONFIG), so `guestCID` goes to our device model only.
/// Each virtio-fs share is a vhost-user-fs-device (virtio-mmio) whose tag QEMU puts in the
/// device's config space itself; one request queue (QEMU's default) of 1024 entries: our parser
/// refuses chains longer than the queue size (virtio 2.7.5.3.1), and we let the guest's FUSE
/// requests reach 256 pages plus headers (max_pages 256), more than QEMU's default of 128.
struct QEMUCommand: Equatable, Sendable {
    /// One vhost-user-fs-device: the tag the guest mounts by and our backend's socket.
    struct VirtioFs: Equatable, Sendable {
        var tag: String
        var socket: String
    }

    var binary: String
    var kernelPath: String
    var initrdPath: String?
    /// The guest's root disk: our BlkDevice's vhost-user socket (QEMU's vhost-user-blk).
    var diskSocket: String?
    /// A virtio-balloon-device with free page reporting.
    var reclaimFreedMemory = false
    /// The host file behind a virtio-rng-device; nil: none.
    var entropySource: String?
    /// TCG's translation buffer (-accel tcg,tb-size=N, MiB). QEMU's default for a system emulator
    /// is 1 GiB, of which an idle pod's guest fills about 42 MiB with code it has run once; the
    /// cap trades a few retranslations for that memory (docs/performance.md).
    static let tcgTranslationBufferMiB = 16
    var cmdline: String
    var vcpus: Int
    var memoryMiB: Int
    var accelerator: QEMUAccelerator
    var vhostVsockSocket: String
    var virtioFs: [VirtioFs]
    /// One virtio-net-device per entry, its queues served by our device over vhost-user.
    struct Network: Equatable {
        var socket: String
        var mac: String
        var mtu: UInt16
    }
    var networks: [Network] = []
    var guestCID: UInt32
    var qmpSocket: String
    var debug: Bool
    /// QEMU's seccomp filter (-sandbox) on.
    var sandbox: Bool
    /// The user QEMU switches to before the guest runs (-runas uid:gid); nil: it stays root.
    var runAs: QEMUUser?

    /// Kernel arguments every QEMU guest gets: serial console, reboot by triple fault (QEMU exits
    /// with -no-reboot), no panic wait, the random pool ready at boot (docs/guest-image.md, "Entropy").
    static let baseCmdline = ["console=ttyS0", "reboot=t", "panic=-1", "random.trust_cpu=on"]

    /// Kernel arguments a TCG guest gets on top: each skips a step of early boot that waits on
    /// emulated time or patches kernel text, both slow under TCG (docs/performance.md, "The guest
    /// kernel's boot under TCG"). `noapictimer`: no local APIC timer calibration and check (about
    /// 200 ms of guest time; TCG has no TSC-deadline timer, and the check fails now and then anyway);
    /// the PIT is the clock event device, broadcast to other vCPUs, as after a failed check.
    /// `no_timer_check`: no 40 ms wait for timer ticks through the IO-APIC, which a KVM guest skips
    /// by itself. `noreplace-smp`: no rewriting of every `lock` prefix in the kernel's text for one
    /// vCPU, thousands of text pokes that each flush TCG's TLB; a `lock` costs TCG nothing extra
    /// on one vCPU.
    static let tcgCmdline = ["noapictimer", "no_timer_check", "noreplace-smp"]

    /// The guest's TSC rate: under TCG the guest TSC is the host's (QEMU reads the host TSC), so we
    /// pass the host's rate and the guest skips calibration (which can hang under TCG). A wrong
    /// value makes guest time run too fast or slow: 2000 kHz made it run ~1000x too fast here.
    static func tscKHz(cpuinfo: String) -> Int? {
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            guard let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: " \t")) }),
                value > 1
            else { continue }
            return Int(value * 1000)
        }
        return nil
    }

    init(
        config: HypervisorConfig, accelerator: QEMUAccelerator, vhostVsockSocket: String, virtioFs: [VirtioFs] = [],
        networks: [Network] = [], diskSocket: String? = nil, qmpSocket: String, tscKHz: Int?, runAs: QEMUUser? = nil
    ) {
        self.virtioFs = virtioFs
        self.networks = networks
        binary = config.qemuBinary
        kernelPath = config.kernelPath
        initrdPath = config.imagePath == nil ? config.initrdPath : nil
        self.diskSocket = diskSocket
        reclaimFreedMemory = config.reclaimFreedMemory
        entropySource = config.qemuEntropySource
        var args = Self.baseCmdline
        if config.imagePath != nil { args += HypervisorConfig.imageRootArguments }
        if accelerator == .tcg {
            if let tscKHz { args.append("tsc_early_khz=\(tscKHz)") }
            args += Self.tcgCmdline
        }
        if !config.debug { args.append("quiet") }
        cmdline = (args + config.cmdlineExtras).joined(separator: " ")
        vcpus = config.vcpus
        memoryMiB = config.memoryMiB
        self.accelerator = accelerator
        self.vhostVsockSocket = vhostVsockSocket
        guestCID = config.guestCID
        self.qmpSocket = qmpSocket
        debug = config.debug
        sandbox = config.qemuSandbox
        self.runAs = runAs
    }

    /// -sandbox: QEMU's seccomp filter, installed before it parses devices, with every optional
    /// group denied: obsolete system calls, set*uid/gid, fork/exec, and scheduler/affinity/
    /// resource changes. With -runas, QEMU itself calls setgid/setgroups/setuid after the filter is
    /// in place (just before the guest starts), so elevateprivileges must allow it there: once it
    /// has set every id to the unprivileged user and holds no capability, set*id can only switch
    /// among that user's own ids, and no guest code has run while it was still root.
    var sandboxOption: String {
        "on,obsolete=deny,elevateprivileges=\(runAs == nil ? "deny" : "allow"),spawn=deny,resourcecontrol=deny"
    }

    var arguments: [String] {
        var a = [
            binary,
            "-M", "microvm,acpi=off,memory-backend=mem",
            "-object", "memory-backend-memfd,id=mem,size=\(memoryMiB)M,share=on",
            "-m", "\(memoryMiB)M",
            "-smp", "\(vcpus)",
            "-accel", accelerator == .tcg ? "tcg,tb-size=\(Self.tcgTranslationBufferMiB)" : accelerator.rawValue,
            "-cpu", accelerator == .kvm ? "host,-arch-capabilities" : "max",
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-serial", "stdio",
            "-qmp", "unix:\(qmpSocket),server=on,wait=off",
            "-chardev", "socket,id=vsock0,path=\(vhostVsockSocket)",
            "-device", "vhost-user-vsock-device,chardev=vsock0",
        ]
        for (index, share) in virtioFs.enumerated() {
            a += [
                "-chardev", "socket,id=fs\(index),path=\(Self.escaped(share.socket))",
                "-device", "vhost-user-fs-device,chardev=fs\(index),tag=\(Self.escaped(share.tag)),queue-size=1024",
            ]
        }
        for (index, net) in networks.enumerated() {
            a += [
                "-chardev", "socket,id=net\(index),path=\(Self.escaped(net.socket))",
                "-netdev", "vhost-user,id=netdev\(index),chardev=net\(index)",
                "-device", "virtio-net-device,netdev=netdev\(index),mac=\(net.mac),host_mtu=\(net.mtu)",
            ]
        }
        if let diskSocket { a += VhostUserBlk.arguments(id: "blk0", socketPath: diskSocket) }
        if reclaimFreedMemory { a += ["-device", "virtio-balloon-device,free-page-reporting=on"] }
        if let entropySource {
            a += ["-object", "rng-random,filename=\(Self.escaped(entropySource)),id=rng0", "-device", "virtio-rng-device,rng=rng0"]
        }
        if sandbox { a += ["-sandbox", sandboxOption] }
        if let runAs { a += ["-runas", "\(runAs.uid):\(runAs.gid)"] }
        a += ["-kernel", kernelPath, "-append", cmdline]
        if let initrdPath { a += ["-initrd", initrdPath] }
        if debug { a += ["-d", "guest_errors"] }
        return a
    }
}

/// An unprivileged user for QEMU (-runas): a user name or "uid:gid", resolved once.
public struct QEMUUser: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// Resolves `name` (a user in the password database, or numeric "uid:gid"); refuses root.
    public static func resolve(_ name: String) throws(HypervisorError) -> QEMUUser {
        let user: QEMUUser
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) {
            user = QEMUUser(uid: uid, gid: gid)
        } else {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 4096)
            let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
            guard rc == 0, result != nil else {
                throw .invalidConfig(
                    "QEMU user \"\(name)\" does not exist: create it (scripts/install-deps.sh adds kata-swift-qemu), "
                        + "name another with hypervisor.qemu_user, or set it to \"\" to run QEMU as root")
            }
            user = QEMUUser(uid: entry.pw_uid, gid: entry.pw_gid)
        }
        guard user.uid != 0, user.gid != 0 else { throw .invalidConfig("QEMU user \"\(name)\" is root; -runas needs an unprivileged user") }
        return user
    }
}

extension QEMUCommand {
    /// A value inside a QEMU option string: commas are doubled.
    static func escaped(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return s
    }
}
