import Devices
import VirtIO
import SystemSupport

/// Which VMM runs the guest.
public enum HypervisorBackendKind: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Probe once per host (cached) and take the in-process KVM VMM if it runs a guest userspace,
    /// QEMU otherwise.
    case auto
    /// Our in-process KVM VMM.
    case kvm
    /// qemu-system-x86_64 -M microvm (TCG, or KVM where it works), our devices over vhost-user.
    case qemu

    public var description: String { rawValue }
}

/// A host directory the guest mounts over virtio-fs (`mount -t virtiofs <tag> <dir>`).
public struct SharedDirectory: Sendable, Equatable {
    /// The virtio-fs tag the guest mounts by (at most 36 bytes).
    public var tag: String
    /// The host directory served; nothing outside it is reachable from the guest.
    public var hostPath: String
    public var readOnly: Bool

    public init(tag: String, hostPath: String, readOnly: Bool = false) {
        self.tag = tag
        self.hostPath = hostPath
        self.readOnly = readOnly
    }
}

/// How the sandbox wants its VM.
public struct HypervisorConfig: Sendable {
    /// Guest kernel: vmlinux (PVH) or bzImage.
    public var kernelPath: String
    public var initrdPath: String?
    /// The guest's root file system as a read-only disk image (ext4, /dev/vda, `root=/dev/vda ro`):
    /// the agent and its files are paged in from it instead of unpacked from an initramfs into
    /// guest RAM (docs/guest-image.md). Set instead of `initrdPath`.
    public var imagePath: String?
    /// A virtio-balloon device with free page reporting: memory the guest frees goes back to the
    /// host (Kata's `reclaim_guest_freed_memory`).
    public var reclaimFreedMemory: Bool
    /// Arguments appended to the backend's own command line (console, reboot, timing).
    public var cmdlineExtras: [String]
    public var vcpus: Int
    public var memoryMiB: Int
    public var backend: HypervisorBackendKind
    /// Verbose VMM output (QEMU's guest-error log, kernel debug messages).
    public var debug: Bool
    /// The guest's vsock CID (3 and up).
    public var guestCID: UInt32
    /// A private directory for this VM's sockets; created if missing, emptied of ours on stop.
    public var runtimeDirectory: String
    /// Where to expose Firecracker's hybrid vsock protocol (nil: not exposed).
    public var hybridVsockPath: String?
    /// Host ports whose guest-initiated connections are forwarded to `<hybridVsockPath>_<port>`.
    public var hybridForwardedPorts: [UInt32]
    /// Receives every byte the guest writes to its console (and the VMM's own messages).
    public var consoleOutput: (@Sendable ([UInt8]) -> Void)?
    /// The QEMU binary for the QEMU backend.
    public var qemuBinary: String
    /// Directories shared with the guest over virtio-fs, served by our FUSE server.
    public var sharedDirectories: [SharedDirectory]
    /// The guest's network interfaces (virtio-net over a tap each); in-process backend only.
    public var networkInterfaces: [NetworkInterface]
    /// QEMU backend: the host file behind the guest's virtio-rng (Kata's `entropy_source`); nil:
    /// no rng device. Without one the guest's first getrandom() waits about a second under TCG for
    /// the kernel's own entropy (the agent's Swift runtime calls it before main).
    public var qemuEntropySource: String?
    /// QEMU backend: start QEMU with its seccomp filter (-sandbox on, every optional group denied).
    public var qemuSandbox: Bool
    /// QEMU backend: the unprivileged user QEMU switches to once its devices are set up (-runas):
    /// a user name or "uid:gid". nil: QEMU stays root.
    public var qemuUser: String?
    /// QEMU backend: a uid of its own for this sandbox's QEMU, claimed from this range (overrides
    /// `qemuUser`). nil: `qemuUser`.
    public var qemuUserPool: QEMUUserPool?
    /// The devices' traffic counters, read by the sandbox's metrics while the VM runs.
    public var traffic = HypervisorTraffic()
    /// A VM saved by `KVMHypervisor.saveTemplate` to restore instead of booting the kernel
    /// (in-process backend only). The VM must be configured as the saved one was: memory,
    /// vCPUs, the same devices in the same order, the same disk image (docs/snapshots.md).
    public var restoreFrom: String?

    public init(
        kernelPath: String, initrdPath: String? = nil, imagePath: String? = nil, reclaimFreedMemory: Bool = false,
        cmdlineExtras: [String] = [], vcpus: Int = 1,
        memoryMiB: Int = 256, backend: HypervisorBackendKind = .auto, debug: Bool = false, guestCID: UInt32 = 3,
        runtimeDirectory: String, hybridVsockPath: String? = nil, hybridForwardedPorts: [UInt32] = [],
        consoleOutput: (@Sendable ([UInt8]) -> Void)? = nil, qemuBinary: String = "/usr/bin/qemu-system-x86_64",
        sharedDirectories: [SharedDirectory] = [], networkInterfaces: [NetworkInterface] = [],
        qemuSandbox: Bool = true, qemuUser: String? = nil, qemuUserPool: QEMUUserPool? = nil,
        qemuEntropySource: String? = "/dev/urandom"
    ) {
        self.qemuEntropySource = qemuEntropySource
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.imagePath = imagePath
        self.reclaimFreedMemory = reclaimFreedMemory
        self.cmdlineExtras = cmdlineExtras
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.backend = backend
        self.debug = debug
        self.guestCID = guestCID
        self.runtimeDirectory = runtimeDirectory
        self.hybridVsockPath = hybridVsockPath
        self.hybridForwardedPorts = hybridForwardedPorts
        self.consoleOutput = consoleOutput
        self.qemuBinary = qemuBinary
        self.sharedDirectories = sharedDirectories
        self.networkInterfaces = networkInterfaces
        self.qemuSandbox = qemuSandbox
        self.qemuUser = qemuUser
        self.qemuUserPool = qemuUserPool
    }
}

extension HypervisorConfig {
    /// Kernel arguments that mount `imagePath` as the root: the only virtio-blk disk is /dev/vda,
    /// mounted read-only; the kernel then runs its /init (the agent) as PID 1.
    public static let imageRootArguments = ["root=/dev/vda", "ro", "rootfstype=ext4", "init=/init"]
}

/// What the guest moved through the sandbox's own device models, the same on every backend (both
/// run our vsock and virtio-fs devices in this process).
public final class HypervisorTraffic: Sendable {
    /// The vsock device: packets and payload bytes (the agent's ttrpc, stdio, port forwards).
    public let vsock = DeviceTraffic()
    /// Every virtio-fs device together: FUSE requests and replies.
    public let sharedDirectories = DeviceTraffic()

    public init() {}
}

/// Where a VM is in its life. Transitions: created → running ⇄ paused → stopped.
public enum HypervisorState: Equatable, Sendable, CustomStringConvertible {
    case created
    case running
    case paused
    /// The VMM ended; `exitCode` is its status (128 + signal when killed), `requested` whether
    /// `stop()` asked for it (a guest reboot/poweroff is not requested).
    case stopped(exitCode: Int32, requested: Bool)

    public var description: String {
        switch self {
        case .created: "created"
        case .running: "running"
        case .paused: "paused"
        case .stopped(let code, let requested): "stopped (status \(code)\(requested ? ", requested" : ""))"
        }
    }
}

/// What a backend can do, for `kata-ctl check` and callers that want to know before trying.
public struct HypervisorCapabilities: Sendable, Equatable {
    public var pauseResume: Bool
    public var hybridVsock: Bool
}

/// The VM of one sandbox, whatever runs it. Every method is safe to call from any task.
public protocol Hypervisor: AnyObject, Sendable {
    var kind: HypervisorBackendKind { get }
    var capabilities: HypervisorCapabilities { get }
    var state: HypervisorState { get }

    /// Boots the guest; returns once the VMM is up and its devices are served (not when the
    /// guest's userspace is ready: `connectVsock` waits for that).
    func start() async throws(HypervisorError)
    /// Stops the VM (politely first, forcibly after `graceSeconds`; 0: forcibly at once) and releases everything:
    /// process, threads, sockets, descriptors. Idempotent.
    func stop(graceSeconds: Double) async
    /// Waits until the VMM ends on its own or by `stop`; returns the final state.
    func waitForExit() async -> HypervisorState
    func pause() async throws(HypervisorError)
    func resume() async throws(HypervisorError)

    /// The last bytes of console output (at most 64 KiB), for errors and tests.
    var consoleTail: String { get }
    /// The VMM's process while it runs, when it is a process of its own (QEMU); nil for the
    /// in-process VMM, whose threads are the shim's.
    var processID: Int32? { get }

    /// A connected byte stream to guest vsock port `port`: a Unix socket descriptor joined to the
    /// vsock connection. Retries while the guest refuses (it may still be booting) until
    /// `timeoutSeconds`.
    func connectVsock(port: UInt32, timeoutSeconds: Double) async throws(HypervisorError) -> FileDescriptor
    /// Guest-initiated connections to host port `port`, each as a Unix socket descriptor.
    func listenVsock(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor>
}

extension Hypervisor {
    public var processID: Int32? { nil }
    public func stop() async { await stop(graceSeconds: 5) }
    public func connectVsock(port: UInt32) async throws(HypervisorError) -> FileDescriptor {
        try await connectVsock(port: port, timeoutSeconds: 10)
    }
}
