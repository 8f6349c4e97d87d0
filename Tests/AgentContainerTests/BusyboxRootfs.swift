// A busybox rootfs from the host's /bin/busybox (busybox-static) and containerd-like specs, as
// JSON for CreateContainer / ExecProcess. Also used to pack the guest test's initramfs.
import Foundation
import Glibc
import GuestContainers
import OCI
import Synchronization

enum BusyboxRootfs {
    static let applets = [
        "sh", "echo", "cat", "id", "hostname", "mkdir", "sleep", "ls", "touch", "true", "head", "wc", "dd", "tr", "ps",
        "stty", "tty", "seq",
    ]
    private static let built = Mutex<String?>(nil)

    /// Lays the rootfs out under `root` (which must exist).
    static func populate(_ root: String) throws {
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "home/user", "root"] {
            try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        chmod(root, 0o755)
        _ = unlink(root + "/bin/busybox")
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
        chmod(root + "/bin/busybox", 0o755)
        for a in applets {
            _ = unlink(root + "/bin/" + a)
            _ = symlink("busybox", root + "/bin/" + a)
        }
        try "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
            .write(toFile: root + "/etc/passwd", atomically: false, encoding: .utf8)
        try "root:x:0:\nuser:x:1000:\n".write(toFile: root + "/etc/group", atomically: false, encoding: .utf8)
    }

    /// The host tests' shared rootfs (built once per run, removed at exit).
    static func hostPath() throws -> String {
        try built.withLock { path in
            if let path { return path }
            let root = "/tmp/ks-agentc-rootfs-\(getpid())"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try populate(root)
            path = root
            atexit { _ = try? FileManager.default.removeItem(atPath: "/tmp/ks-agentc-rootfs-\(getpid())") }
            return root
        }
    }

    static let defaultCaps = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]

    /// containerd's default spec shape: read-only root, tmpfs /tmp, the usual mounts, masked
    /// and read-only paths, default capabilities, no_new_privs.
    static func spec(
        _ args: [String], rootfs: String, hostname: String? = nil, user: OCIUser = OCIUser(), terminal: Bool = false
    ) -> OCISpec {
        let mounts = [
            OCIMount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            OCIMount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            OCIMount(
                destination: "/dev/pts", type: "devpts", source: "devpts",
                options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            OCIMount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            OCIMount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            OCIMount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            OCIMount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"]),
        ]
        let linux = OCILinux(
            namespaces: ["pid", "ipc", "uts", "mount", "network"].map { OCINamespace(type: $0) },
            maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])
        var process = OCIProcess(
            user: user, args: args, env: ["PATH=/bin", "HOME=/root", "TERM=xterm"], cwd: "/",
            capabilities: OCICapabilities(all: defaultCaps), noNewPrivileges: true)
        process.terminal = terminal
        return OCISpec(process: process, root: OCIRoot(path: rootfs, readonly: true), hostname: hostname, mounts: mounts, linux: linux)
    }

    static func json<T: Encodable>(_ value: T) throws -> Data {
        try JSONEncoder().encode(value)
    }

    /// A seccomp profile that denies mkdir/mkdirat with EPERM.
    static let denyMkdir = OCISeccomp(
        defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        syscalls: [.init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(EPERM))])
}
