import CSupport

/// What the shim process as a whole may do (ks_process_confine.c; docs/security.md, "The shim's
/// process-wide filter" and "Capabilities"): a seccomp denylist on every thread, and a capability
/// set cut down to what the shim uses. Both are inherited by every child, QEMU included.
public enum ProcessConfinement {
    /// Loads the denylist on every thread of the process (TSYNC). The per-thread allowlists
    /// (ThreadConfinement) stack on top of it; the stricter answer wins.
    public static func installFilter() throws(Errno) {
        _ = try shimResult(ks_process_filter_install())
    }

    /// Keeps `capabilities` and drops every other one from the bounding, effective, permitted,
    /// inheritable and ambient sets. Irreversible for this process and its children.
    public static func limitCapabilities(to capabilities: [Capability]) throws(Errno) {
        let mask = capabilities.reduce(UInt64(0)) { $0 | (UInt64(1) << UInt64($1.rawValue)) }
        _ = try shimResult(ks_process_limit_capabilities(mask))
    }

    /// The Linux capabilities by number (linux/capability.h), the ones the shim decides about.
    public enum Capability: Int, CaseIterable, Sendable {
        case chown = 0, dacOverride, dacReadSearch, fowner, fsetid, kill, setgid, setuid, setpcap
        case linuxImmutable, netBindService, netBroadcast, netAdmin, netRaw, ipcLock, ipcOwner
        case sysModule, sysRawio, sysChroot, sysPtrace, sysPacct, sysAdmin, sysBoot, sysNice
        case sysResource, sysTime, sysTtyConfig, mknod, lease, auditWrite, auditControl, setfcap
        case macOverride, macAdmin, syslog, wakeAlarm, blockSuspend, auditRead, perfmon, bpf
        case checkpointRestore
    }
}
