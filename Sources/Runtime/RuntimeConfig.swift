// The runtime's configuration (docs/configuration.md): Kata's configuration.toml schema
// ([hypervisor.qemu], [hypervisor.kvm] for our in-process VMM, [agent.kata], [runtime], [factory];
// RuntimeConfig+Schema.swift), found through containerd's runtime options (ConfigPath), else
// $KATA_CONF_FILE, else /etc/kata-swift/configuration.toml, else built-in defaults. Wrong types and
// impossible values are errors naming the file, the line and the key; keys we do not implement,
// and our old keys (RuntimeConfig+Legacy.swift), are warnings.

import Hypervisor
import OCI
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Everything the VM sandbox reads from the configuration.
public struct RuntimeConfig: Equatable, Sendable {
    public static let defaultPath = "/etc/kata-swift/configuration.toml"
    public static let environmentVariable = "KATA_CONF_FILE"
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// The levels the guest agent understands (`agent.log=` on the kernel command line).
    public static let agentLogLevels = ["trace", "debug", "info", "warning", "error"]

    // [hypervisor.qemu] / [hypervisor.kvm]
    public var backend: HypervisorBackendKind = .auto
    public var kernel = "/usr/local/share/kata-swift/vmlinux"
    public var initrd = "/usr/local/share/kata-swift/initramfs-agent.cpio"
    /// The guest's root as a read-only ext4 image on virtio-blk, instead of `initrd` (Kata's
    /// `image`; docs/guest-image.md). nil: boot from `initrd`.
    public var image: String?
    /// A virtio-balloon with free page reporting, so memory the guest frees returns to the host
    /// (Kata's `reclaim_guest_freed_memory`; QEMU backend).
    public var reclaimFreedMemory = true
    /// The host file behind the guest's virtio-rng under QEMU (Kata's `entropy_source`); "": none.
    public var entropySource = "/dev/urandom"
    public var vcpus = 1
    public var memoryMiB = 128
    /// Extra kernel command-line words, appended to the backend's own.
    public var kernelParams: [String] = []
    /// The VMM's own debug output (`enable_debug` of the hypervisor table).
    public var hypervisorDebug = false
    /// Regular expressions over the name after `io.katacontainers.config.hypervisor.`: the
    /// hypervisor annotations a pod may set (Kata's rule; empty: none).
    public var enableAnnotations: [String] = []
    /// glob(7) patterns a `io.katacontainers.config.hypervisor.path` annotation must match.
    public var validHypervisorPaths: [String] = []
    public var qemuPath = "/usr/bin/qemu-system-x86_64"
    /// QEMU's seccomp filter (-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny).
    public var qemuSandbox = true
    /// The unprivileged user QEMU switches to once its devices are set up (-runas): a user name or
    /// "uid:gid"; nil (`user = ""`) keeps QEMU root.
    public var qemuUser: String? = RuntimeConfig.defaultQEMUUser
    /// The dedicated user scripts/install-deps.sh creates for QEMU.
    public static let defaultQEMUUser = "kata-swift-qemu"
    /// A uid (and gid) of its own for each sandbox's QEMU, from `qemuUIDBase ..< qemuUIDBase +
    /// qemuUIDCount` (`[hypervisor.qemu]` `uid_base`, `uid_count`), instead of the shared
    /// `qemuUser`; 0 uids: the shared user. The default range is one no account or user namespace
    /// mapping uses on our hosts (docs/security.md 8.2).
    public var qemuUIDBase = 2_000_000_000
    public var qemuUIDCount = 1000
    /// Where the uids are claimed: one for every shim on the host, whatever its sandbox_dir.
    public static let qemuUIDLockDirectory = "/run/kata-swift/qemu-uids"
    // [agent.kata]
    public var debugConsole = false
    /// How long the shim waits for the agent's first answer after the VM starts.
    public var agentDialTimeoutSeconds = 60
    public var agentLogLevel = "info"
    // [runtime]
    public var logLevel = "info"
    /// Parent of the per-sandbox directories (`<sandbox_dir>/<sandbox-id>/`).
    public var sandboxDirectory = "/run/kata-swift"
    // [factory]
    /// Sandboxes kept booted to agent ready ahead of demand, per containerd and configuration
    /// (Kata's `vm_cache_number`; docs/warm-sandboxes.md). 0: none, every pod boots its own VM.
    public var warmSandboxes = 0
    /// Where the warm pools live: `<sandbox_dir>/.warm/<pool>/` (a name no sandbox id can take).
    public var warmPoolsDirectory: String { sandboxDirectory + "/.warm" }
    /// VMs start from a template saved at agent ready instead of booting, where our VMM runs
    /// (Kata's `enable_template`; docs/snapshots.md, "Templates").
    public var templates = false
    /// Where templates are kept (Kata's `template_path`); nil: `<sandbox_dir>/.template`.
    public var templatePath: String?
    public var templateDirectory: String { templatePath ?? sandboxDirectory + "/.template" }

    public init() {}

    /// Where the configuration came from, for logs and errors.
    public enum Source: Equatable, Sendable, CustomStringConvertible {
        case runtimeOptions(String)
        case environment(String)
        case defaultPath(String)
        case builtIn

        public var description: String {
            switch self {
            case .runtimeOptions(let path): "\(path) (containerd runtime options ConfigPath)"
            case .environment(let path): "\(path) (\(RuntimeConfig.environmentVariable))"
            case .defaultPath(let path): path
            case .builtIn: "built-in defaults"
            }
        }

        /// The file, if there is one.
        public var path: String? {
            switch self {
            case .runtimeOptions(let path), .environment(let path), .defaultPath(let path): path
            case .builtIn: nil
            }
        }
    }

    /// Finds and reads the configuration. `configPath` is containerd's ConfigPath option.
    public static func load(configPath: String?, environment: [String: String]) throws(ConfigError) -> (RuntimeConfig, Source) {
        var warnings: [ConfigWarning] = []
        return try load(configPath: configPath, environment: environment, warnings: &warnings)
    }

    /// Finds and reads the configuration, collecting its warnings.
    public static func load(configPath: String?, environment: [String: String], warnings: inout [ConfigWarning])
        throws(ConfigError) -> (RuntimeConfig, Source)
    {
        if let path = configPath, !path.isEmpty {
            return (try read(path: path, warnings: &warnings), .runtimeOptions(path))
        }
        if let path = environment[environmentVariable], !path.isEmpty {
            return (try read(path: path, warnings: &warnings), .environment(path))
        }
        if access(defaultPath, F_OK) == 0 {
            return (try read(path: defaultPath, warnings: &warnings), .defaultPath(defaultPath))
        }
        return (RuntimeConfig(), .builtIn)
    }

    /// Reads and validates the file at `path`.
    public static func read(path: String) throws(ConfigError) -> RuntimeConfig {
        var warnings: [ConfigWarning] = []
        return try read(path: path, warnings: &warnings)
    }

    public static func read(path: String, warnings: inout [ConfigWarning]) throws(ConfigError) -> RuntimeConfig {
        let text: String
        do {
            text = try readTextFile(path)
        } catch {
            throw .unreadable(file: path, reason: error.description)
        }
        return try parse(text, file: path, warnings: &warnings)
    }

    /// Parses and validates `text` (the contents of `file`).
    public static func parse(_ text: String, file: String) throws(ConfigError) -> RuntimeConfig {
        var warnings: [ConfigWarning] = []
        return try parse(text, file: file, warnings: &warnings)
    }

    /// Parses and validates `text` (the contents of `file`); `warnings` gets what was ignored.
    public static func parse(_ text: String, file: String, warnings: inout [ConfigWarning]) throws(ConfigError) -> RuntimeConfig {
        let document: TOMLDocument
        do {
            document = try TOMLSubset.parse(text)
        } catch {
            throw .syntax(file: file, line: error.line, reason: error.reason)
        }
        let reader = ConfigReader(document: document, file: file)
        var config = RuntimeConfig()
        try config.applyLegacy(reader)
        try config.applyKataSchema(reader)
        reader.warnAboutUnreadKeys()
        warnings += reader.warnings
        return config
    }
}

/// A key that was read but has no effect, or an old key that still works.
public struct ConfigWarning: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String

    public var description: String { "configuration \(file):\(line): \(key): \(message)" }
}

/// A configuration that cannot be used.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case syntax(file: String, line: Int, reason: String)
    case wrongType(file: String, key: String, line: Int, expected: String, found: String)
    case invalidValue(file: String, key: String, line: Int, reason: String)
    /// A pod annotation (io.katacontainers.config.*) that is not allowed or not valid.
    case annotation(name: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "configuration \(file): cannot read: \(reason)"
        case .syntax(let file, let line, let reason): "configuration \(file):\(line): \(reason)"
        case .wrongType(let file, let key, let line, let expected, let found):
            "configuration \(file):\(line): \(key) must be of type \(expected), not \(found)"
        case .invalidValue(let file, let key, let line, let reason): "configuration \(file):\(line): \(key): \(reason)"
        case .annotation(let name, let reason): "annotation \(name): \(reason)"
        }
    }
}

/// Reads a whole (small) text file.
func readTextFile(_ path: String) throws(RuntimeError) -> String {
    let limit = 1 << 20
    let bytes: [UInt8]
    do {
        bytes = try readWholeFile(path, limit: limit + 1)
    } catch {
        throw .system(operation: "read \(path)", errno: error.rawValue)
    }
    guard bytes.count <= limit else { throw .system(operation: "read \(path): larger than 1 MiB", errno: EFBIG) }
    return String(decoding: bytes, as: UTF8.self)
}

extension RuntimeConfig {
    /// Kata's static sandbox sizing: the VM gets the configured memory and vCPUs plus what the
    /// first container's limits ask for (memory limit in MiB, rounded up; CPU quota / period,
    /// rounded up), so a container limited to more than the default VM still gets it. Unlimited
    /// (absent, 0 or negative) adds nothing; vCPUs stay within Kata's rule (the host's CPUs,
    /// at most 64) and memory within what the backends accept.
    public func sized(for resources: OCIResources?) -> RuntimeConfig {
        var sized = self
        if let limit = resources?.memory?.limit, limit > 0 {
            let mib = limit >> 20 + (limit & ((1 << 20) - 1) == 0 ? 0 : 1)
            sized.memoryMiB = Int(min(mib, 65536 - Int64(memoryMiB))) + memoryMiB
        }
        if let quota = resources?.cpu?.quota, quota > 0, let period = resources?.cpu?.period, period > 0 {
            let cpus = UInt64(quota) / period + (UInt64(quota) % period == 0 ? 0 : 1)
            sized.vcpus = Self.kataVcpus(vcpus + Int(min(cpus, 64)))
        }
        return sized
    }
}

