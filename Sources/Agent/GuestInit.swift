// PID-1 duties: console, boot-time mounts, loopback up, child subreaping, power off. When the agent is not
// PID 1 (tests on the host) it mounts nothing and never reboots anything.

import CGuest
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Whether this process is the init of its PID namespace (the guest's, or a test's unshare).
public enum AgentRole: Sendable, Equatable, CustomStringConvertible {
    case initProcess
    case hostProcess

    public static var current: AgentRole { getpid() == 1 ? .initProcess : .hostProcess }

    public var description: String {
        switch self {
        case .initProcess: "PID 1"
        case .hostProcess: "process \(getpid()) (not PID 1: no mounts, no power off)"
        }
    }
}

public enum GuestInit {
    /// PID 1 boot sequence: stdio on the console if the kernel could not give us one, then the
    /// mounts. Throws on the first failure; the caller powers off.
    public static func setUp(log: AgentLog) throws(MountError) {
        switch ks_agent_early_proc_mount_result() {
        case 1: log.info("early constructor mounted /proc")
        case 0: break
        case let rc: log.error("early constructor could not mount /proc: \(Errno(-rc))")
        }
        try GuestRoot.leaveInitialRootfs(log: log)
        try GuestMounts.mountAll(GuestMounts.bootSequence, log: log)
        attachConsoleIfNeeded(log: log)
        GuestNetwork.bringLoopbackUpAtBoot(log: log)
    }

    /// As the child subreaper on the host, orphans of the agent's future children come back to it
    /// (PID 1 gets them anyway).
    public static func becomeSubreaper(log: AgentLog) {
        let rc = ks_set_child_subreaper()
        if rc != 0 { log.warning("prctl(PR_SET_CHILD_SUBREAPER): \(Errno(-rc))") }
    }

    /// The kernel opens /dev/console as fds 0-2 for init when the initramfs has the node; when it
    /// could not, open it now from the fresh devtmpfs. Fds that are already open are kept (under a
    /// test harness they are its pipes).
    static func attachConsoleIfNeeded(log: AgentLog) {
        let closed = (0...2).filter { fcntl(Int32($0), F_GETFD) < 0 }
        guard !closed.isEmpty else { return }
        let console = open("/dev/console", O_RDWR | O_NOCTTY)
        guard console >= 0 else {
            log.warning("open /dev/console: \(Errno(errno)); fds \(closed) stay closed")
            return
        }
        for fd in closed where fd != Int(console) { dup2(console, Int32(fd)) }
        if console > 2 { close(console) }
        log.info("attached fds \(closed) to /dev/console")
    }

    /// Ends the guest. PID 1 syncs and restarts the machine: our microVMs have no ACPI, so
    /// reboot(RB_POWER_OFF) would only halt the CPU (the kernel turns POWER_OFF into HALT when it
    /// has no power-off method) and the VMM would wait forever; with `reboot=t` the restart is a
    /// triple fault, which QEMU `-no-reboot` and our VMM treat as the end of the guest. Inside a
    /// PID namespace the same call ends that namespace. Any other process just exits.
    public static func shutdown(role: AgentRole, exitCode: Int32, log: AgentLog) -> Never {
        guard role == .initProcess else { exit(exitCode) }
        log.info("powering off")
        let rc = ks_reboot_restart()
        // Only reached if the kernel refused (no CAP_SYS_BOOT); PID 1 exiting panics the kernel,
        // which with panic=-1 restarts it as well.
        log.error("reboot(RB_AUTOBOOT): \(Errno(-rc))")
        _exit(exitCode)
    }

    /// Prints a fatal error on the console and ends the guest (or the host process).
    public static func fatal(_ message: String, role: AgentRole, log: AgentLog) -> Never {
        log.error("fatal: \(message)")
        shutdown(role: role, exitCode: 1, log: log)
    }
}
