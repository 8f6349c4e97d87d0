// Name tables of the OCI spec: capabilities, rlimits, mount options, seccomp actions/operators.
// Values are the Linux / libseccomp ABI numbers (stable), written out because Swift does not
// import the C macros.

enum Tables {
    /// CAP_* names in bit order (linux/capability.h).
    static let capabilities: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
        "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    static let rlimits: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
        "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
        "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
        "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    enum MountFlag {
        case set(UInt)
        case clear(UInt)
        case propagation(UInt)
        case bind(recursive: Bool)
    }

    static let msRdonly: UInt = 1, msNosuid: UInt = 2, msNodev: UInt = 4, msNoexec: UInt = 8
    static let msRec: UInt = 0x4000

    static let mountOptions: [String: MountFlag] = [
        "ro": .set(msRdonly), "rw": .clear(msRdonly),
        "nosuid": .set(msNosuid), "suid": .clear(msNosuid),
        "nodev": .set(msNodev), "dev": .clear(msNodev),
        "noexec": .set(msNoexec), "exec": .clear(msNoexec),
        "sync": .set(16), "async": .clear(16),
        "dirsync": .set(128), "mand": .set(64), "nomand": .clear(64),
        "noatime": .set(1024), "atime": .clear(1024),
        "nodiratime": .set(2048), "diratime": .clear(2048),
        "relatime": .set(0x20_0000), "norelatime": .clear(0x20_0000),
        "strictatime": .set(0x100_0000), "nostrictatime": .clear(0x100_0000),
        "bind": .bind(recursive: false), "rbind": .bind(recursive: true),
        "private": .propagation(1 << 18), "rprivate": .propagation(1 << 18 | msRec),
        "slave": .propagation(1 << 19), "rslave": .propagation(1 << 19 | msRec),
        "shared": .propagation(1 << 20), "rshared": .propagation(1 << 20 | msRec),
        "unbindable": .propagation(1 << 17), "runbindable": .propagation(1 << 17 | msRec),
    ]

    /// SCMP_ACT_* for an OCI action name; `errno` fills ERRNO/TRACE.
    static func seccompAction(_ name: String, errno: UInt32) -> UInt32? {
        switch name {
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return 0
        case "SCMP_ACT_KILL_PROCESS": return 0x8000_0000
        case "SCMP_ACT_TRAP": return 0x0003_0000
        case "SCMP_ACT_ERRNO": return 0x0005_0000 | (errno & 0xffff)
        case "SCMP_ACT_TRACE": return 0x7ff0_0000 | (errno & 0xffff)
        case "SCMP_ACT_LOG": return 0x7ffc_0000
        case "SCMP_ACT_ALLOW": return 0x7fff_0000
        default: return nil
        }
    }

    static let seccompOps: [String: UInt32] = [
        "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
    ]

    /// "SCMP_ARCH_X86_64" -> "x86_64" (libseccomp's names).
    static func seccompArch(_ name: String) -> String? {
        let prefix = "SCMP_ARCH_"
        guard name.hasPrefix(prefix), name.count > prefix.count else { return nil }
        return String(name.dropFirst(prefix.count)).lowercased()
    }
}
